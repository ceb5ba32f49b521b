/**
 * Timing normalization for rejection paths. A prober that can tell an
 * auth failure (fast), a masked fallback and an unreachable mask host apart
 * by how long each takes has found the gateway, so every rejection path
 * completes no earlier than a delay sampled once, when the connection is
 * accepted, from a bounded log-normal distribution.
 */
import { type Clock, type TimerHandle, systemClock } from "../../core/clock.js";
import { type Rng, systemRng } from "../../core/random.js";
import { normalizeBounds, sampleBoundedLogNormal } from "./lognormal.js";

export interface RejectionDelayOptions {
  /** Lower bound in ms (default 0). 0 selects a uniform draw on [0, ceiling]. */
  floorMs?: number;
  /** Upper bound in ms (default 0: no delay). Equal to floor: a fixed delay. */
  ceilingMs?: number;
  clock?: Clock;
  rng?: Rng;
}

/**
 * No added delay by default: a byte-for-byte mask relay already carries the
 * mask host's own timing, and a delay on top of it (100 ms - 1 s was the old
 * default) made the gateway's closes measurably later than the mask host's.
 */
export const DEFAULT_REJECTION_FLOOR_MS = 0;
export const DEFAULT_REJECTION_CEILING_MS = 0;

/**
 * The earliest moment a rejection may complete. Start one when a connection
 * is accepted; every path that ends the connection without serving it waits
 * for it (`wait()` or `after(fn)`). At most one clock timer is alive at a time.
 */
export class RejectionDeadline {
  readonly startedAt: number;
  readonly delayMs: number;
  readonly dueAt: number;
  private readonly clock: Clock;
  private timer: TimerHandle | undefined;
  private waiters: Array<() => void> = [];
  private cancelled = false;

  constructor(clock: Clock, delayMs: number) {
    this.clock = clock;
    this.startedAt = clock.now();
    this.delayMs = delayMs;
    this.dueAt = this.startedAt + delayMs;
  }

  /** Milliseconds left before the rejection may complete (0 once due). */
  remainingMs(): number {
    return Math.max(0, this.dueAt - this.clock.now());
  }

  /** True once the deadline has passed (or was cancelled). */
  get due(): boolean {
    return this.cancelled || this.remainingMs() === 0;
  }

  /** Runs `fn` at the deadline (on the next microtask if it has passed). */
  after(fn: () => void): void {
    if (this.due) {
      queueMicrotask(fn);
      return;
    }
    this.waiters.push(fn);
    if (this.timer === undefined) this.timer = this.clock.setTimer(() => this.fire(), this.remainingMs());
  }

  /** Resolves at the deadline. */
  wait(): Promise<void> {
    return new Promise((resolve) => this.after(resolve));
  }

  /** Releases every waiter now; for shutdown, never for a normal rejection. */
  cancel(): void {
    this.cancelled = true;
    this.fire();
  }

  private fire(): void {
    this.timer?.cancel();
    this.timer = undefined;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** Samples a delay and starts its deadline now. */
export function startRejectionDelay(o: RejectionDelayOptions = {}): RejectionDeadline {
  const clock = o.clock ?? systemClock;
  const { floorMs, ceilingMs } = normalizeBounds(
    o.floorMs ?? DEFAULT_REJECTION_FLOOR_MS,
    o.ceilingMs ?? DEFAULT_REJECTION_CEILING_MS,
  );
  return new RejectionDeadline(clock, sampleBoundedLogNormal(floorMs, ceilingMs, o.rng ?? systemRng));
}
