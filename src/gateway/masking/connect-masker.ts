/**
 * Probe resistance on a `connect` listener: a client that is not an
 * authenticated CONNECT is relayed, with every byte the listener read, to
 * the mask host, so a prober sees that site and nothing of the gateway (no
 * 407, no Proxy-Authenticate, no byte of ours). Probing still costs the
 * prober: the connection holds its guard slot while relayed and counts as
 * an auth failure in the penalty box.
 */
import type net from "node:net";
import { parseHostPort } from "../../config/leaves.js";
import { maskUnauthenticated } from "../../probe/connect-masking.js";
import type { MaskRelayOptions, MaskRelaySummary } from "../../probe/mask-relay.js";
import { type RejectionDeadline, startRejectionDelay } from "../../probe/rejection-delay.js";
import type { Connection } from "../connection.js";
import type { GatewayContext } from "../context.js";
import type { ProbeResistanceConfig } from "./config-schema.js";

/** Relay options of a validated probe_resistance block (the deadline is per connection). */
export function maskOptionsOf(p: ProbeResistanceConfig, ctx: GatewayContext): Omit<MaskRelayOptions, "deadline"> {
  const mask = parseHostPort(p.mask)!;
  return {
    mask,
    clock: ctx.clock,
    maxBytesToMask: p.max_bytes,
    maxBytesToClient: p.max_bytes,
    totalTimeoutMs: p.total_timeout,
    idleTimeoutMs: p.idle_timeout,
    throttle: p.throttle === undefined ? undefined : { afterBytes: p.throttle.after, bytesPerSecond: p.throttle.rate },
  };
}

/** The rejection deadline of one connection, started when it is accepted. */
export function rejectionDeadlineOf(p: ProbeResistanceConfig, ctx: GatewayContext): RejectionDeadline {
  return startRejectionDelay({ floorMs: p.delay.floor, ceilingMs: p.delay.ceiling, clock: ctx.clock });
}

export class ConnectMasker {
  private readonly deadline: RejectionDeadline;
  private started = false;

  constructor(
    private readonly conn: Connection,
    private readonly p: ProbeResistanceConfig,
    private readonly ctx: GatewayContext,
    private readonly listener: string,
  ) {
    // Started at accept, so parsing, auth and the relay all hide inside one sampled delay.
    this.deadline = rejectionDeadlineOf(p, ctx);
  }

  /** Whether the connection was handed to the mask host. */
  get masking(): boolean {
    return this.started;
  }

  /**
   * Hands the connection to the mask host. `bytes` is everything read from
   * the client, in order. `reason` is for the log only; it never reaches the
   * wire. Recording the failure here (not per reason) makes every kind of
   * probe cost the same.
   */
  mask(reason: string, bytes: Buffer, user?: string): Promise<MaskRelaySummary> | undefined {
    if (this.started || this.conn.raw.destroyed) return undefined;
    this.started = true;
    const { guard, logger } = this.ctx;
    const key = this.conn.admission.key;
    logger.auth({ remote_addr: this.conn.remote, user, key_fingerprint: undefined, result: "reject", reason: `masked_${reason}`, listener: this.listener });
    this.ctx.events.emit("auth", { listener: this.listener, remote_addr: this.conn.remote, user, result: "reject", reason: `masked_${reason}` });
    if (!this.conn.admission.exempt) {
      const r = guard.recordAuthFailure(key);
      // The ban closes this key's connections; doing it at the deadline keeps the ban step looking like any other probe.
      if (r.banned) this.deadline.after(() => this.ctx.announceBan(key, this.conn.remote, r.bannedUntil, r.failures, r.shadow));
    }
    return maskUnauthenticated(this.conn.stream as net.Socket, bytes, { ...maskOptionsOf(this.p, this.ctx), deadline: this.deadline });
  }
}
