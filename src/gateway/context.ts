/**
 * What every listener of one Gateway shares. The gateway swaps the fields
 * on reload; listeners read them per connection, so a reload takes effect for
 * the next connection without restarting any socket.
 */
import type { EventEmitter } from "node:events";
import type { Clock } from "../core/clock.js";
import type { Rng } from "../core/random.js";
import type { Store } from "../stores/store.js";
import type { Config } from "./config/schema.js";
import type { GatewayBandwidth } from "../features/bandwidth/gateway-bandwidth.js";
import type { GatewayEvents } from "./events.js";
import type { ConnectionGuard } from "./guard/connection-guard.js";
import type { UserTable } from "./identity/basic-auth.js";
import type { PasswordVerifier } from "./identity/password-verifier.js";
import type { GatewayLogger } from "./log/logger.js";
import type { DestinationPolicy } from "../features/permissions/destination-policy.js";
import type { ReadBufferPool } from "./read-pump.js";

export interface GatewayContext {
  config: Config;
  clock: Clock;
  guard: ConnectionGuard;
  users: UserTable;
  /** Checks passwords against `users` with a bounded, prioritized queue and a credential cache; survives reloads. */
  verifier: PasswordVerifier;
  policy: DestinationPolicy;
  logger: GatewayLogger;
  events: EventEmitter<GatewayEvents>;
  /** Bandwidth shaping ([bandwidth]): decides per connection whether the relay is shaped. */
  bandwidth: GatewayBandwidth;
  /** Where the gateway counts ([store]): the memory store, or the Redis store a fleet shares. */
  store: Store<boolean>;
  /** 64 KiB read buffers the relays of this gateway share (src/gateway/read-pump.ts). */
  readBuffers: ReadBufferPool;
  /** Randomness of probe resistance's inter-packet timing (default: the system's). */
  rng?: Rng;
  /** Starts a ban now for `key` (after the penalty box decided one) and closes what it has open. */
  announceBan(key: string, remote: string, bannedUntilMonotonic: number, failures: number, shadow: boolean): void;
}
