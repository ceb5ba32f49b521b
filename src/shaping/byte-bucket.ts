/** A byte bucket: a GCRA over bytes that grants what a rate and burst allow. */
import { gcra, gcraParams, gcraRescale, type GcraParams } from "../algorithms/gcra.js";
import { Outcome } from "../algorithms/outcome.js";
import { positive } from "../core/validate.js";

/** A byte rate: `bytesPerSecond` sustained, up to `burst` bytes at once. */
export interface RateSpec {
  readonly bytesPerSecond: number;
  /** Bucket size in bytes (default: one second of `bytesPerSecond`). */
  readonly burst?: number;
}

/**
 * A byte bucket: the engine's GCRA transition with cost = bytes, kept in one
 * GCRA state. GCRA fits a byte shaper as it is: a
 * shaper never asks for more than `burst` at once (it splits larger chunks
 * into grants), and "how many bytes may go now" is GCRA's `remaining`.
 * The bucket only does arithmetic; the scheduler owns timers and waiters.
 */
export class ByteBucket {
  private readonly state = new Float64Array(gcra.width);
  private readonly out = new Outcome();
  private p: GcraParams;

  constructor(spec: RateSpec) {
    this.p = ByteBucket.params(spec);
    gcra.init(this.state, 0);
  }

  static params(spec: RateSpec): GcraParams {
    const rate = positive("bytesPerSecond", spec.bytesPerSecond);
    const burst = positive("burst", spec.burst ?? rate);
    // A bucket smaller than one byte could never pass a byte.
    return gcraParams({ rate, burst: Math.max(1, burst), periodMs: 1000 });
  }

  get bytesPerSecond(): number {
    return this.p.rate;
  }

  get burst(): number {
    return this.p.burst;
  }

  /** Whole bytes that may pass at `now` (at most `burst`). */
  available(now: number): number {
    gcra.peek(this.state, 0, now, 1, this.p, this.out);
    return this.out.remaining;
  }

  /** Takes `bytes` (1 ..= available(now)); returns false and takes nothing if they do not fit. */
  take(now: number, bytes: number): boolean {
    gcra.consume(this.state, 0, now, bytes, this.p, this.out);
    return this.out.allowed;
  }

  /** Milliseconds (>= 1) until `bytes` (<= burst) fit, or 0 if they fit now. */
  waitMs(now: number, bytes: number): number {
    gcra.peek(this.state, 0, now, Math.min(bytes, this.p.burst), this.p, this.out);
    return this.out.allowed ? 0 : this.out.retryAfterMs;
  }

  /** True when the bucket is full again (indistinguishable from a new one). */
  isIdle(now: number): boolean {
    return gcra.isIdle(this.state, 0, now, this.p);
  }

  /**
   * Changes the rate in place. The debt the bucket carries is kept in bytes,
   * not in time, so a live connection neither gains a free burst nor waits
   * out the old rate's schedule: from `now` on it runs at the new rate.
   */
  setRate(now: number, spec: RateSpec): void {
    const next = ByteBucket.params(spec);
    gcraRescale(this.state, 0, now, this.p, next);
    this.p = next;
  }
}
