/**
 * Relays a rejected client to the mask host (the real website the gateway
 * hides behind), starting with every byte the gateway already read from it,
 * so a prober sees exactly what the mask host answers. Caps keep the gateway
 * from becoming a free open relay to that site: bytes per direction, total
 * time, idle time, and an optional throttle after a number of bytes. The
 * gateway never writes a byte of its own: when the mask host cannot be
 * reached the client gets a silent close (after the deadline, if one is
 * configured). The mask host's timing is the prober's timing: closes pass
 * at once both ways, and a configured delay holds back only the first
 * thing the client receives.
 */
import net from "node:net";
import type { Writable } from "node:stream";
import { type Clock, type TimerHandle, systemClock } from "../../core/clock.js";
import { InvalidArgumentError } from "../../core/errors.js";
import type { Rng } from "../../core/random.js";
import { integerAtLeast, positive } from "../../core/validate.js";
import type { EarlyMaskState, MaskTarget } from "./early-mask.js";
import { IptStage } from "./ipt.js";
import { type RejectionDeadline, startRejectionDelay } from "./rejection-delay.js";
import { type ShapePaddingOptions, shapePadding, shapePaddingOptions } from "./shape-padding.js";

export type { MaskTarget };

export interface MaskThrottle {
  /** Bytes per direction relayed at full speed before the throttle applies. */
  afterBytes: number;
  /** Rate per direction once throttled. */
  bytesPerSecond: number;
}

export interface MaskRelayLimits {
  /** Client -> mask byte cap, counting the already-read bytes (default 5 MiB). */
  maxBytesToMask?: number;
  /** Mask -> client byte cap (default 5 MiB). */
  maxBytesToClient?: number;
  /** Whole relay, from the call (default 10 min). Never shorter than the mask host's own timeouts, or the prober sees ours. */
  totalTimeoutMs?: number;
  /** No byte in either direction for this long ends the relay (default 120 s: longer than nginx's 60 s waits). */
  idleTimeoutMs?: number;
  /** Longest wait for the TCP connection to the mask host (default: the idle timeout, at most 10 s). */
  connectTimeoutMs?: number;
  throttle?: MaskThrottle;
}

export interface MaskRelayOptions extends MaskRelayLimits {
  mask: MaskTarget;
  /** The first byte (or the close, when the mask host sends nothing) reaches the client no earlier than this; default: no delay. */
  deadline?: RejectionDeadline;
  /** A mask connection dialled before the client was classified (EarlyMask.handOver()); default: dial now. */
  early?: EarlyMaskState;
  /** Inter-packet timing on the mask host -> client path. */
  ipt?: { rng?: Rng };
  /** Pad what goes to the mask host when the client finishes sending (shape-padding.ts); default off. */
  shapePadding?: ShapePaddingOptions;
  /** Randomness of the shape padding. */
  rng?: Rng;
  clock?: Clock;
  /** Source address for the connection to the mask host. */
  localAddress?: string;
}

export type MaskRelayOutcome =
  /** Both sides finished on their own. */
  | "completed"
  /** The mask host refused, failed or did not answer the connect in time. */
  | "unreachable"
  | "byte-cap"
  | "total-timeout"
  | "idle-timeout"
  /** A socket error (reset) on either side after the connection was up. */
  | "error";

export interface MaskRelaySummary {
  outcome: MaskRelayOutcome;
  /** Bytes delivered to the mask host, including the already-read ones. */
  bytesToMask: number;
  /** Bytes delivered to the client. */
  bytesToClient: number;
  /** Clock milliseconds from the call until both sockets were closed. */
  durationMs: number;
}

export const MASK_DEFAULTS = {
  maxBytesToMask: 5 * 1024 * 1024,
  maxBytesToClient: 5 * 1024 * 1024,
  totalTimeoutMs: 600_000,
  idleTimeoutMs: 120_000,
} as const;

/** Validated limits with defaults applied; throws InvalidArgumentError naming the field. */
export function maskRelayLimits(o: MaskRelayLimits = {}): Required<Omit<MaskRelayLimits, "throttle">> & { throttle?: MaskThrottle } {
  const idle = positive("idleTimeoutMs", o.idleTimeoutMs ?? MASK_DEFAULTS.idleTimeoutMs);
  const out = {
    maxBytesToMask: integerAtLeast("maxBytesToMask", o.maxBytesToMask ?? MASK_DEFAULTS.maxBytesToMask, 1),
    maxBytesToClient: integerAtLeast("maxBytesToClient", o.maxBytesToClient ?? MASK_DEFAULTS.maxBytesToClient, 1),
    totalTimeoutMs: positive("totalTimeoutMs", o.totalTimeoutMs ?? MASK_DEFAULTS.totalTimeoutMs),
    idleTimeoutMs: idle,
    connectTimeoutMs: positive("connectTimeoutMs", o.connectTimeoutMs ?? Math.min(idle, 10_000)),
  };
  if (o.throttle === undefined) return out;
  return {
    ...out,
    throttle: {
      afterBytes: integerAtLeast("throttle.afterBytes", o.throttle.afterBytes, 0),
      bytesPerSecond: positive("throttle.bytesPerSecond", o.throttle.bytesPerSecond),
    },
  };
}

/** One direction of the relay: counts, caps, applies backpressure and the throttle. */
class Direction {
  bytes = 0;
  /** Clock time this direction last moved data or was released by the throttle. */
  lastActive: number;
  private drainWait = false;
  private throttleTimer: TimerHandle | undefined;

  constructor(
    readonly src: net.Socket,
    readonly dst: Writable,
    readonly cap: number,
    private readonly throttle: MaskThrottle | undefined,
    private readonly clock: Clock,
  ) {
    this.lastActive = clock.now();
  }

  /** Forwards a chunk; returns true when the byte cap was reached by it. */
  forward(chunk: Buffer): boolean {
    const room = this.cap - this.bytes;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    const before = this.bytes;
    this.bytes += part.length;
    if (part.length > 0 && !this.dst.write(part)) {
      this.drainWait = true;
      this.src.pause();
      this.dst.once("drain", () => {
        this.drainWait = false;
        this.maybeResume();
      });
    }
    if (this.throttle !== undefined && this.bytes > this.throttle.afterBytes) {
      // Charge only the bytes past the threshold, at the throttled rate.
      const excess = this.bytes - Math.max(before, this.throttle.afterBytes);
      const waitMs = (excess / this.throttle.bytesPerSecond) * 1000;
      if (waitMs > 0) {
        this.src.pause();
        this.throttleTimer?.cancel();
        this.throttleTimer = this.clock.setTimer(() => {
          this.throttleTimer = undefined;
          this.lastActive = this.clock.now();
          this.maybeResume();
        }, waitMs);
      }
    }
    return this.bytes >= this.cap;
  }

  /** The throttle is holding this direction back (the relay is busy, not idle). */
  get throttled(): boolean {
    return this.throttleTimer !== undefined;
  }

  /** Starts the flow unless backpressure or the throttle is holding it. */
  start(): void {
    this.maybeResume();
  }

  stop(): void {
    this.throttleTimer?.cancel();
    this.throttleTimer = undefined;
  }

  private maybeResume(): void {
    if (!this.drainWait && this.throttleTimer === undefined && !this.src.destroyed) this.src.resume();
  }
}

/**
 * Relays `client` (already read: `initial`) to the mask host until one of
 * the caps or both sides end. Never throws and never writes a byte that did
 * not come from the mask host. The first thing the client receives (a byte,
 * or the close when the mask host sends nothing) waits for the deadline;
 * everything after it, and every close, passes at once. Resolves once both
 * sockets are closed.
 */
export function relayToMask(client: net.Socket, initial: Buffer, o: MaskRelayOptions): Promise<MaskRelaySummary> {
  const limits = maskRelayLimits(o);
  if (!o.mask || typeof o.mask.host !== "string" || !Number.isInteger(o.mask.port)) {
    throw new InvalidArgumentError("mask", "must be { host, port }");
  }
  const padding = o.shapePadding === undefined ? undefined : shapePaddingOptions(o.shapePadding);
  const clock = o.clock ?? systemClock;
  const deadline = o.deadline ?? startRejectionDelay({ clock, floorMs: 0, ceilingMs: 0 });
  const startedAt = clock.now();
  // A prober's FIN must reach the mask host as a FIN, and the mask host's answer must still reach the prober.
  client.allowHalfOpen = true;
  client.pause();

  if (client.destroyed) {
    // The client is already gone (reset while its first bytes were read): nobody to relay for.
    o.early?.socket.destroy();
    return Promise.resolve({ outcome: "error", bytesToMask: 0, bytesToClient: 0, durationMs: 0 });
  }
  return new Promise((resolve) => {
    let outcome: MaskRelayOutcome | undefined;
    let lastActivity = clock.now();
    let toMask: Direction | undefined;
    let toClient: Direction | undefined;
    let idleTimer: TimerHandle | undefined;
    let clientClosed = false;
    let maskClosed = false;
    let resolved = false;
    const timers: TimerHandle[] = [];
    // What the mask host sends goes to the client through this (IPT pacing when enabled).
    // (The same IPT stage as the gateway's own relay: src/gateway/relay.ts.)
    const towardClient: Writable = o.ipt === undefined ? client : new IptStage({ clock, rng: o.ipt.rng }).towardClient(client);

    // Until the deadline, what goes toward the client waits here, in order (the delay covers the first byte only).
    let held: Array<() => void> | undefined;
    if (!deadline.due) {
      held = [];
      deadline.after(() => {
        const q = held ?? [];
        held = undefined;
        for (const fn of q) fn();
      });
    }
    const gated = (fn: () => void): void => {
      if (held !== undefined) held.push(fn);
      else fn();
    };

    const early = o.early;
    const mask = early?.socket ?? net.connect({ host: o.mask.host, port: o.mask.port, localAddress: o.localAddress, allowHalfOpen: true });
    mask.pause();

    const maybeResolve = () => {
      if (resolved || !clientClosed || !maskClosed) return;
      resolved = true;
      for (const t of timers) t.cancel();
      idleTimer?.cancel();
      toMask?.stop();
      toClient?.stop();
      resolve({
        outcome: outcome ?? "completed",
        bytesToMask: toMask?.bytes ?? 0,
        bytesToClient: toClient?.bytes ?? 0,
        durationMs: clock.now() - startedAt,
      });
    };

    /** FIN toward the client after everything relayed is flushed; a client that will not read is cut after the idle time. */
    let clientEnded = false;
    const endClient = () =>
      gated(() => {
        if (clientEnded) return;
        clientEnded = true;
        towardClient.end();
        timers.push(clock.setTimer(() => client.destroy(), limits.idleTimeoutMs));
      });

    /** Ends the relay: the mask side at once, the client side with a FIN (the deadline still holds for a first event). */
    let tornDown = false;
    const teardown = (why: MaskRelayOutcome) => {
      outcome ??= why;
      if (tornDown) return;
      tornDown = true;
      // Whatever the client still sends is read and dropped, so its FIN is seen and the close is orderly.
      client.removeListener("data", onClientData);
      client.on("data", () => {});
      client.resume();
      mask.destroy();
      endClient();
    };

    const onClientData = (chunk: Buffer) => {
      if (outcome !== undefined) return;
      lastActivity = clock.now();
      if (toMask!.forward(chunk)) teardown("byte-cap");
    };
    const onMaskData = (chunk: Buffer) => {
      if (outcome !== undefined) return;
      lastActivity = clock.now();
      if (held !== undefined) {
        // The first byte waits for the deadline; hold the mask host meanwhile.
        mask.pause();
        gated(() => {
          if (outcome === undefined && toClient!.forward(chunk)) teardown("byte-cap");
          else toClient!.start();
        });
        return;
      }
      if (toClient!.forward(chunk)) teardown("byte-cap");
    };

    const armIdle = (ms: number) => {
      idleTimer = clock.setTimer(() => {
        // Time the throttle holds data back is the gateway's doing, not the peers' silence.
        if (toMask?.throttled || toClient?.throttled) lastActivity = clock.now();
        lastActivity = Math.max(lastActivity, toMask?.lastActive ?? -Infinity, toClient?.lastActive ?? -Infinity);
        const quiet = clock.now() - lastActivity;
        if (quiet >= limits.idleTimeoutMs) teardown("idle-timeout");
        else armIdle(limits.idleTimeoutMs - quiet);
      }, ms);
    };

    /** The client finished sending: pass its FIN on at once (after the shape padding, when configured). */
    const clientFinished = () => {
      if (outcome !== undefined) return;
      if (padding !== undefined && toMask !== undefined) {
        const pad = shapePadding(toMask.bytes, padding, o.rng);
        if (pad.length > 0) toMask.forward(pad);
      }
      mask.end();
    };

    client.on("error", () => {
      outcome ??= "error";
      client.destroy();
      mask.destroy();
    });
    client.on("close", () => {
      clientClosed = true;
      mask.destroy();
      maybeResolve();
    });
    mask.on("close", () => {
      maskClosed = true;
      maybeResolve();
    });
    if (mask.closed) queueMicrotask(() => mask.emit("close"));
    const connected = () => toMask !== undefined;
    mask.on("error", () => {
      if (!connected()) {
        // Connect failed: nothing was relayed, so nothing distinguishes this from a slow, silent server.
        teardown("unreachable");
      } else {
        // The mask host reset the connection (nginx does, closing with unread bytes): the prober gets a reset too,
        // as it would from the site itself or through a port-forward.
        outcome ??= "error";
        client.resetAndDestroy();
        mask.destroy();
      }
    });

    const connectTimer = clock.setTimer(() => {
      if (!connected()) teardown("unreachable");
    }, limits.connectTimeoutMs);
    timers.push(connectTimer);
    timers.push(clock.setTimer(() => teardown("total-timeout"), limits.totalTimeoutMs));

    const onConnect = () => {
      connectTimer.cancel();
      if (outcome !== undefined) return;
      toMask = new Direction(client, mask, limits.maxBytesToMask, limits.throttle, clock);
      toClient = new Direction(mask, towardClient, limits.maxBytesToClient, limits.throttle, clock);
      lastActivity = clock.now();
      armIdle(limits.idleTimeoutMs);
      if (initial.length > 0 && toMask.forward(initial)) {
        teardown("byte-cap");
        return;
      }
      // What an early mask connection already received goes first, then its FIN if it sent one.
      for (const chunk of early?.pending ?? []) onMaskData(chunk);
      client.on("data", onClientData);
      mask.on("data", onMaskData);
      // The client may have sent EOF while its first bytes were being classified.
      if (client.readableEnded) clientFinished();
      else client.on("end", clientFinished);
      if (early?.ended) endClient();
      else mask.on("end", endClient);
      if (early?.failed && !early.ended) {
        // Reset by the mask host before the hand-over: reset, as the site itself would.
        outcome ??= "error";
        client.resetAndDestroy();
        mask.destroy();
        return;
      }
      toMask.start();
      toClient.start();
    };
    if (early?.connected) onConnect();
    else if (early?.failed) teardown("unreachable");
    else mask.once("connect", onConnect);
  });
}
