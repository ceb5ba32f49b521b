/**
 * What the `http` listener uses of the gateway, as structural types: the
 * log, the events, the shared context, an admitted connection and a
 * listener's proxy fields, each only as far as the http adapters read them.
 * The gateway passes its own objects; the compiler checks they fit, and
 * this feature imports nothing of the gateway.
 */
import type { Duplex } from "node:stream";
import type { Clock } from "../../core/clock.js";
import type { LimitedLine } from "../../core/limited-line.js";
import type { Store } from "../../stores/store.js";
import type { HttpSection } from "./config-schema.js";

/** The `event=limited` line of a refused request. */
export type HttpLimitedLine = LimitedLine;

/** The `http_rejection` event the metrics count. */
export interface HttpRejectionEvent {
  listener: string;
  route: string;
  limiter: string;
  remote_addr?: string | undefined;
  long_retry_after?: boolean;
}

export interface HttpGatewayLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  limited(e: HttpLimitedLine): void;
}

/** The gateway's events an http listener emits or hears (a reload applies new routes at once). */
export interface HttpGatewayEvents {
  emit(event: "http_rejection", e: HttpRejectionEvent): unknown;
  on(event: "reload", listener: (e: { ok: boolean }) => void): unknown;
  off(event: "reload", listener: (e: { ok: boolean }) => void): unknown;
}

/** The gateway's shared parts an http listener uses (read at each call: a reload swaps them). */
export interface HttpContext {
  readonly clock: Clock;
  readonly logger: HttpGatewayLogger;
  readonly events: HttpGatewayEvents;
  readonly config: { readonly http: HttpSection; readonly log: { readonly long_retry_after: number } };
  /** Where the gateway counts: the memory store, or the Redis store a fleet shares. */
  readonly store: Store<boolean>;
}

/** An admitted connection: only its stream reaches the HTTP parser. */
export interface HttpConnection {
  readonly stream: Duplex;
}

export type { HttpListenerConfig } from "./config-schema.js";
