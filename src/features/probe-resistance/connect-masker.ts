/**
 * Probe resistance on a `connect` listener: a client that is not an
 * authenticated CONNECT is relayed, with every byte the listener read, to
 * the mask host, so a prober sees that site and nothing of the gateway (no
 * 407, no Proxy-Authenticate, no byte of ours). A head that has not arrived
 * within the classify window gets its mask connection then, so the mask
 * host's own timeouts run from about the prober's connect; if the mask host
 * speaks or closes first, the client is masked at once. Probing still costs
 * the prober in the operator's books (the penalty box, the log), never in
 * what it sees.
 */
import { whenReady } from "../../core/maybe-promise.js";
import type net from "node:net";
import { parseHostPort } from "../../config/leaves.js";
import { systemRng } from "../../core/random.js";
import { maskUnauthenticated } from "./connect-masking.js";
import { type DrainSummary, drainAndClose } from "./drain.js";
import { EarlyMask } from "./early-mask.js";
import type { MaskRelayOptions, MaskRelaySummary } from "./mask-relay.js";
import type { MaskedTlsOptions } from "./masked-tls-listener.js";
import { type RejectionDeadline, startRejectionDelay } from "./rejection-delay.js";
import type { TimerHandle } from "../../core/clock.js";
import { type ProbeResistanceConfig, classifyWindowMs } from "./config-schema.js";
import type { MaskedConnection, MaskingContext } from "./gateway-view.js";

/** Relay options of a validated probe_resistance block with a mask host (the deadline is per connection). */
export function maskOptionsOf(p: ProbeResistanceConfig, ctx: Pick<MaskingContext, "clock" | "rng">): Omit<MaskRelayOptions, "deadline"> {
  const mask = parseHostPort(p.mask)!;
  const rng = ctx.rng ?? systemRng;
  const sp = p.shape_padding;
  return {
    mask,
    clock: ctx.clock,
    maxBytesToMask: p.max_bytes,
    maxBytesToClient: p.max_bytes,
    totalTimeoutMs: p.total_timeout,
    idleTimeoutMs: p.idle_timeout,
    throttle: p.throttle === undefined ? undefined : { afterBytes: p.throttle.after, bytesPerSecond: p.throttle.rate },
    ipt: p.ipt.enabled ? { rng } : undefined,
    shapePadding: sp.enabled ? { floor: sp.bucket_floor, cap: sp.bucket_cap, blurMax: sp.blur_max, aggressive: sp.aggressive } : undefined,
    rng,
  };
}

/** The drain of a listener with `mask = false`. */
export function drainOptionsOf(p: ProbeResistanceConfig): NonNullable<MaskedTlsOptions["drain"]> {
  return { maxBytes: p.drain.max_bytes, totalTimeoutMs: p.drain.total_timeout, idleTimeoutMs: p.drain.idle_timeout };
}

/** The rejection deadline of one connection, started when it is accepted. */
export function rejectionDeadlineOf(p: ProbeResistanceConfig, ctx: Pick<MaskingContext, "clock">): RejectionDeadline {
  return startRejectionDelay({ floorMs: p.delay.floor, ceilingMs: p.delay.ceiling, clock: ctx.clock });
}

export class ConnectMasker {
  private readonly deadline: RejectionDeadline;
  private started = false;
  private window: TimerHandle | undefined;
  private early: EarlyMask | undefined;

  constructor(
    private readonly conn: MaskedConnection,
    private readonly p: ProbeResistanceConfig,
    private readonly ctx: MaskingContext,
    private readonly listener: string,
  ) {
    // Started at accept, so parsing, auth and the relay all hide inside one sampled delay.
    this.deadline = rejectionDeadlineOf(p, ctx);
    // A client gone before it was masked or served: its early mask connection goes too.
    conn.raw.once("close", () => {
      this.classified();
      this.early?.discard();
      this.early = undefined;
    });
  }

  /** Whether the connection was handed to the mask host. */
  get masking(): boolean {
    return this.started;
  }

  /**
   * Starts the classify window: if no whole head has arrived when it ends,
   * the mask host is dialled, and `onMaskFirst` runs if it speaks or closes
   * before the head is complete.
   */
  watch(onMaskFirst: () => void): void {
    const target = this.p.mask === false ? undefined : parseHostPort(this.p.mask);
    if (target === undefined) return;
    const dial = () => {
      this.window = undefined;
      if (this.started || this.conn.raw.destroyed) return;
      this.early = new EarlyMask(target);
      this.early.onActivity(onMaskFirst);
    };
    const ms = classifyWindowMs(this.p);
    // Window 0: at accept, like a port-forward.
    if (ms <= 0) dial();
    else this.window = this.ctx.clock.setTimer(dial, ms);
  }

  /** A whole head arrived (or the connection ended): no early dial from now on. */
  classified(): void {
    this.window?.cancel();
    this.window = undefined;
  }

  /** The client authenticated: the early mask connection, if any, goes away unused. */
  served(): void {
    this.classified();
    this.early?.discard();
    this.early = undefined;
    this.deadline.cancel();
  }

  /**
   * Hands the connection to the mask host. `bytes` is everything read from
   * the client, in order. `reason` is for the log only; it never reaches the
   * wire. Recording the failure here (not per reason) makes every kind of
   * probe cost the same.
   */
  mask(reason: string, bytes: Buffer, user?: string): Promise<MaskRelaySummary | DrainSummary> | undefined {
    if (this.started || this.conn.raw.destroyed) return undefined;
    this.started = true;
    this.classified();
    this.conn.masked = true;
    const { guard, logger } = this.ctx;
    const key = this.conn.admission.key;
    logger.auth({ remote_addr: this.conn.remote, user, key_fingerprint: undefined, result: "reject", reason: `masked_${reason}`, listener: this.listener });
    this.ctx.events.emit("auth", { listener: this.listener, remote_addr: this.conn.remote, user, result: "reject", reason: `masked_${reason}` });
    if (!this.conn.admission.exempt) {
      // A ban refuses this address's authenticated paths from now on; masked connections (this one included) carry on.
      whenReady(guard.recordAuthFailure(key), (r) => {
        if (r.banned) this.deadline.after(() => this.ctx.announceBan(key, this.conn.remote, r.bannedUntil, r.failures, r.shadow));
      });
    }
    const socket = this.conn.stream as net.Socket;
    if (this.p.mask === false) return drainAndClose(socket, bytes.length, { ...drainOptionsOf(this.p), clock: this.ctx.clock, deadline: this.deadline });
    const early = this.early?.handOver();
    this.early = undefined;
    return maskUnauthenticated(socket, bytes, { ...maskOptionsOf(this.p, this.ctx), deadline: this.deadline, early });
  }
}
