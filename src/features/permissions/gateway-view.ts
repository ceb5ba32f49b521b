/**
 * What signed permissions use of the gateway, as structural types: the log,
 * the shared context, a tunnel's connection and a listener's configuration,
 * each only as far as the permission adapters read them. The gateway passes
 * its own objects; the compiler checks they fit, and this feature imports
 * nothing of the gateway.
 */
import type { Socket } from "node:net";
import type { Clock } from "../../core/clock.js";
import type { DestinationDecision } from "./destination-policy.js";

/** The gateway's log lines the permission policy writes. */
export interface PermissionLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

/** The gateway's shared parts a listener's permissions use (read at each call: a reload swaps them). */
export interface PermissionContext {
  readonly clock: Clock;
  readonly logger: PermissionLogger;
  readonly config: { readonly log: { readonly audit_destinations: boolean } };
  /** The configured `[[policy.rule]]` destinations, for a listener without signed permissions. */
  readonly policy: { decide(identity: string, host: string, port: number): Promise<DestinationDecision> };
}

/** An open tunnel a revoked row may close. */
export interface TunnelConnection {
  readonly raw: Pick<Socket, "once">;
  close(reason: string): void;
}

export type { PermissionListenerConfig } from "./config-schema.js";
