/**
 * Relays a rejected client to the mask host (the real website the gateway
 * hides behind), starting with every byte the gateway already read from it,
 * so a prober sees exactly what the mask host answers. Caps keep the gateway
 * from becoming a free open relay to that site: bytes per direction, total
 * time, idle time, and an optional throttle after a number of bytes. The
 * gateway never writes a byte of its own: when the mask host cannot be
 * reached the client gets a silent close after the normalized delay.
 */
import net from "node:net";
import { type Clock, type TimerHandle, systemClock } from "../core/clock.js";
import { InvalidArgumentError } from "../core/errors.js";
import { integerAtLeast, positive } from "../core/validate.js";
import { type RejectionDeadline, startRejectionDelay } from "./rejection-delay.js";

export interface MaskTarget {
  host: string;
  port: number;
}

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
  /** Whole relay, from the call (default 60 s). */
  totalTimeoutMs?: number;
  /** No byte in either direction for this long ends the relay (default 5 s). */
  idleTimeoutMs?: number;
  /** Longest wait for the TCP connection to the mask host (default: the idle timeout). */
  connectTimeoutMs?: number;
  throttle?: MaskThrottle;
}

export interface MaskRelayOptions extends MaskRelayLimits {
  mask: MaskTarget;
  /** The client is closed no earlier than this; default: a deadline started now with the default bounds. */
  deadline?: RejectionDeadline;
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
  totalTimeoutMs: 60_000,
  idleTimeoutMs: 5_000,
} as const;

/** Validated limits with defaults applied; throws InvalidArgumentError naming the field. */
export function maskRelayLimits(o: MaskRelayLimits = {}): Required<Omit<MaskRelayLimits, "throttle">> & { throttle?: MaskThrottle } {
  const idle = positive("idleTimeoutMs", o.idleTimeoutMs ?? MASK_DEFAULTS.idleTimeoutMs);
  const out = {
    maxBytesToMask: integerAtLeast("maxBytesToMask", o.maxBytesToMask ?? MASK_DEFAULTS.maxBytesToMask, 1),
    maxBytesToClient: integerAtLeast("maxBytesToClient", o.maxBytesToClient ?? MASK_DEFAULTS.maxBytesToClient, 1),
    totalTimeoutMs: positive("totalTimeoutMs", o.totalTimeoutMs ?? MASK_DEFAULTS.totalTimeoutMs),
    idleTimeoutMs: idle,
    connectTimeoutMs: positive("connectTimeoutMs", o.connectTimeoutMs ?? idle),
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
    readonly dst: net.Socket,
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
 * not come from the mask host. The client is closed no earlier than the
 * deadline. Resolves once both sockets are closed.
 */
export function relayToMask(client: net.Socket, initial: Buffer, o: MaskRelayOptions): Promise<MaskRelaySummary> {
  const limits = maskRelayLimits(o);
  if (!o.mask || typeof o.mask.host !== "string" || !Number.isInteger(o.mask.port)) {
    throw new InvalidArgumentError("mask", "must be { host, port }");
  }
  const clock = o.clock ?? systemClock;
  const deadline = o.deadline ?? startRejectionDelay({ clock });
  const startedAt = clock.now();
  // A prober's FIN must reach the mask host as a FIN, and the mask host's answer must still reach the prober.
  client.allowHalfOpen = true;
  client.pause();

  if (client.destroyed) {
    // The client is already gone (reset while its first bytes were read): nobody to relay for.
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

    const mask = net.connect({ host: o.mask.host, port: o.mask.port, localAddress: o.localAddress, allowHalfOpen: true });
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

    /** Ends the relay: the mask side at once, the client side silently at the deadline. */
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
      deadline.after(() => {
        // FIN after whatever was already relayed has been flushed; a client that will not read is cut after the idle time.
        client.end();
        timers.push(clock.setTimer(() => client.destroy(), limits.idleTimeoutMs));
      });
    };

    const onClientData = (chunk: Buffer) => {
      if (outcome !== undefined) return;
      lastActivity = clock.now();
      if (toMask!.forward(chunk)) teardown("byte-cap");
    };
    const onMaskData = (chunk: Buffer) => {
      if (outcome !== undefined) return;
      lastActivity = clock.now();
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
    mask.on("error", () => {
      if (toMask === undefined) {
        // Connect failed: nothing was relayed, so nothing distinguishes this from a slow, silent server.
        outcome ??= "unreachable";
        teardown("unreachable");
      } else {
        teardown("error");
      }
    });

    const connectTimer = clock.setTimer(() => {
      if (toMask === undefined) teardown("unreachable");
    }, limits.connectTimeoutMs);
    timers.push(connectTimer);
    timers.push(clock.setTimer(() => teardown("total-timeout"), limits.totalTimeoutMs));

    mask.once("connect", () => {
      connectTimer.cancel();
      if (outcome !== undefined) return;
      toMask = new Direction(client, mask, limits.maxBytesToMask, limits.throttle, clock);
      toClient = new Direction(mask, client, limits.maxBytesToClient, limits.throttle, clock);
      lastActivity = clock.now();
      armIdle(limits.idleTimeoutMs);
      if (initial.length > 0 && toMask.forward(initial)) {
        teardown("byte-cap");
        return;
      }
      client.on("data", onClientData);
      mask.on("data", onMaskData);
      // The client may have sent EOF while its first bytes were being classified.
      if (client.readableEnded) mask.end();
      else client.on("end", () => mask.end());
      mask.on("end", () => deadline.after(() => client.end()));
      toMask.start();
      toClient.start();
    });
  });
}
