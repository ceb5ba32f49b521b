/**
 * Inter-packet timing (IPT) on the server-to-client path. Real HTTPS traffic
 * alternates bursts (packets a few milliseconds apart) and idle periods; a
 * relay that forwards every chunk the instant it arrives has a machine-like
 * timing signature. While data is pending the controller spaces writes by
 * log-normal burst delays clamped to [0.5 ms, 10 ms]; with nothing pending
 * it adds nothing, so an idle-phase delay can never stall data.
 */
import { Writable } from "node:stream";
import { type Clock, type TimerHandle, systemClock } from "../../core/clock.js";
import { type Rng, systemRng } from "../../core/random.js";
import { sampleLogNormalClamped } from "./lognormal.js";

export const IPT_BURST_MIN_MS = 0.5;
export const IPT_BURST_MAX_MS = 10;
/** Burst gaps: median e^1 ~ 2.7 ms, sigma 0.5 (so the clamp rarely bites). */
export const IPT_BURST_MEDIAN_MS = Math.E;
export const IPT_BURST_SIGMA = 0.5;
/** Chance of staying in the current state per decision, as in observed browser traffic. */
export const IPT_BURST_STAY = 0.95;
export const IPT_IDLE_STAY = 0.99;

export type IptState = "burst" | "idle";

/**
 * The burst/idle decision: a two-state Markov chain kept for its statistics,
 * whose state never decides a delay on its own. Pending data always gets a
 * burst-range delay, even in the idle state; no pending data gets zero.
 */
export class IptController {
  private current: IptState = "burst";
  constructor(private readonly rng: Rng = systemRng) {}

  get state(): IptState {
    return this.current;
  }

  /** Milliseconds to wait before the next write. */
  nextDelayMs(hasPendingData: boolean): number {
    this.transition();
    if (!hasPendingData) return 0;
    return sampleLogNormalClamped(IPT_BURST_MEDIAN_MS, IPT_BURST_SIGMA, IPT_BURST_MIN_MS, IPT_BURST_MAX_MS, this.rng);
  }

  private transition(): void {
    const u = this.rng.next();
    const stay = this.current === "burst" ? IPT_BURST_STAY : IPT_IDLE_STAY;
    if (u >= 0 && u < 1 && u >= stay) this.current = this.current === "burst" ? "idle" : "burst";
  }
}

/** Where the writer gets its delays: an IptController, or any source with the same contract. */
export interface IptDelaySource {
  nextDelayMs(hasPendingData: boolean): number;
}

export interface IptWriterOptions {
  clock?: Clock;
  /** Used for a new IptController when `delays` is not given. */
  rng?: Rng;
  delays?: IptDelaySource;
  /** Bytes held before the writer pushes back on its source (default 256 KiB). */
  highWaterMark?: number;
}

/**
 * A Writable that forwards to `target` with IPT pacing: everything pending is
 * written in one go, and the next write waits until a burst delay after the
 * previous one. Data that arrives after a longer pause goes out at once.
 * Backpressure from the target is honoured; the held bytes are bounded by
 * highWaterMark (the Writable's own buffer holds the rest). `end()` flushes
 * and ends the target.
 */
export class IptWriter extends Writable {
  readonly controller: IptDelaySource;
  private readonly clock: Clock;
  private readonly target: Writable;
  private readonly maxHeld: number;
  private held: Buffer[] = [];
  private heldBytes = 0;
  private heldCallbacks: Array<(err?: Error | null) => void> = [];
  private timer: TimerHandle | undefined;
  private lastWriteAt = -Infinity;
  private gapMs = 0;
  private targetBlocked = false;
  private finalCb: ((err?: Error | null) => void) | undefined;

  constructor(target: Writable, o: IptWriterOptions = {}) {
    super({ highWaterMark: o.highWaterMark ?? 256 * 1024 });
    this.target = target;
    this.clock = o.clock ?? systemClock;
    this.controller = o.delays ?? new IptController(o.rng ?? systemRng);
    this.maxHeld = o.highWaterMark ?? 256 * 1024;
    target.on("drain", () => {
      this.targetBlocked = false;
      this.pump();
    });
    // A target that fails or goes away takes the writer (and its held bytes) with it.
    target.once("error", (err: Error) => this.destroy(err));
    target.once("close", () => {
      if (!this.writableFinished) this.destroy();
    });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const wasEmpty = this.heldBytes === 0;
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    // Accept more at once while under the bound; otherwise hold the source until a flush.
    if (this.heldBytes < this.maxHeld) cb();
    else this.heldCallbacks.push(cb);
    if (wasEmpty && this.timer === undefined) {
      // New data after a flush: it waits for the rest of a burst gap from the last write, never longer.
      this.gapMs = this.controller.nextDelayMs(true);
      this.schedule();
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.finalCb = cb;
    this.pump();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.held = [];
    this.heldBytes = 0;
    cb(err);
  }

  private schedule(): void {
    const wait = Math.max(0, this.lastWriteAt + this.gapMs - this.clock.now());
    if (wait === 0) {
      this.pump();
      return;
    }
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      this.pump();
    }, wait);
  }

  private pump(): void {
    if (this.timer !== undefined || this.targetBlocked || this.destroyed) return;
    if (this.heldBytes > 0) {
      const data = this.held.length === 1 ? this.held[0]! : Buffer.concat(this.held, this.heldBytes);
      const cbs = this.heldCallbacks;
      this.held = [];
      this.heldBytes = 0;
      this.heldCallbacks = [];
      this.lastWriteAt = this.clock.now();
      if (!this.target.write(data)) this.targetBlocked = true;
      // Releasing the source may deliver more data at once; _write then schedules it a burst gap after this write.
      for (const cb of cbs) cb();
      if (this.heldBytes > 0 || this.timer !== undefined) return;
      // Nothing pending: the controller adds nothing (it only advances its state).
      this.controller.nextDelayMs(false);
    }
    if (this.finalCb !== undefined && this.heldBytes === 0 && !this.targetBlocked) {
      const cb = this.finalCb;
      this.finalCb = undefined;
      this.target.end(() => cb());
    }
  }
}

/** Bytes one paced connection holds before its source is paused (the writer's buffer holds as much again). */
export const IPT_HELD_BYTES = 64 * 1024;

/** What the IPT stage writes to: the client side of a relay. */
export interface PacedClient extends Writable {
  destroy(error?: Error): this;
}

/**
 * The IPT stage of a relay (the gateway's tunnels and terminated TLS, and
 * the mask relay): everything going toward the client is written through
 * an IptWriter in front of it. One stage serves one connection.
 */
export class IptStage {
  readonly kind = "ipt";
  constructor(private readonly o: { clock: Clock; rng?: Rng }) {}

  /**
   * The writer that takes the place of `client` for the bytes toward it. It
   * ends the client after flushing (half-close kept) and follows the client
   * down when that fails or closes; its own errors close the client, which
   * the relay already watches.
   */
  towardClient(client: PacedClient): Writable {
    const writer = new IptWriter(client, { clock: this.o.clock, rng: this.o.rng ?? systemRng, highWaterMark: IPT_HELD_BYTES });
    writer.on("error", () => client.destroy());
    return writer;
  }
}
