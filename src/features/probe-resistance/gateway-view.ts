/**
 * What probe resistance uses of the gateway, as structural types: the parts
 * of a connection, of the shared context and of a listener's configuration
 * the masking adapters read or set. The gateway passes its own objects; the
 * compiler checks they fit, and this feature imports nothing of the gateway.
 */
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Clock } from "../../core/clock.js";
import type { Rng } from "../../core/random.js";

/** The penalty box's answer to one failure (a ban, when it decided one). */
export interface ProbeFailure {
  banned: boolean;
  bannedUntil: number;
  failures: number;
  shadow: boolean;
}

/** The `auth` line and event of a masked connection. */
export interface MaskedAuthEvent {
  remote_addr: string;
  user?: string;
  key_fingerprint?: undefined;
  result: "reject";
  reason: string;
  listener: string;
}

/** The gateway's shared parts a masking listener uses. */
export interface MaskingContext {
  readonly clock: Clock;
  /** Randomness of the inter-packet timing (default: the system's). */
  readonly rng?: Rng;
  /** Counts one failure of an address key; at once on a memory store, a promise on a shared one. */
  readonly guard: { recordAuthFailure(key: string): ProbeFailure | Promise<ProbeFailure> };
  readonly logger: {
    auth(e: MaskedAuthEvent): void;
    info(msg: string, fields?: Record<string, unknown>): void;
    error(msg: string, fields?: Record<string, unknown>): void;
  };
  readonly events: { emit(event: "auth", e: { listener: string; remote_addr: string; user: string | undefined; result: "reject"; reason: string }): unknown };
  /** Starts a ban for `key` (after the penalty box decided one) and closes what it has open. */
  announceBan(key: string, remote: string, bannedUntilMonotonic: number, failures: number, shadow: boolean): void;
}

/** One admitted connection, as probe resistance sees it. */
export interface MaskedConnection {
  readonly raw: Socket;
  /** The stream the protocol runs on (the raw socket before any TLS). */
  readonly stream: Duplex;
  readonly remote: string;
  readonly admission: { readonly key: string; readonly exempt: boolean };
  /** Handed to the mask host: a ban leaves it open. */
  masked: boolean;
  /** The ClientHello is being read: a ban marks it `refused` instead of closing it. */
  classifying: boolean;
  readonly refused: boolean;
  close(reason: string): void;
}

export type { MaskingListenerConfig } from "./config-schema.js";
