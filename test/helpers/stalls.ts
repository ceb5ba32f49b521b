/**
 * How long this process was kept from running, for rate tests on real
 * sockets. A shaper that does not run cannot send; when it runs again its
 * bucket holds at most one burst, so a stall longer than the burst's time
 * loses (stall - burst time) of the rate for good. On a loaded machine the
 * lower bound of a measured rate is therefore the cap over the time the
 * process could run, not over the whole window; the upper bound (cap plus
 * one burst) holds whatever the load.
 *
 * A 1 ms interval timer notes every gap between its ticks longer than
 * `minGapMs`: a gap is time the event loop (and so the in-process gateway,
 * its relay and the meters) did not run, whether the kernel gave the CPU to
 * another process or this one was busy.
 */
import { systemClock } from "../../src/core/clock.js";

export class StallWatch {
  private readonly gaps: [number, number][] = [];
  private last = systemClock.now();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly minGapMs = 5, private readonly maxGaps = 100_000) {
    this.timer = setInterval(() => {
      const now = systemClock.now();
      if (now - this.last > this.minGapMs && this.gaps.length < this.maxGaps) this.gaps.push([this.last, now]);
      this.last = now;
    }, 1);
  }

  /**
   * Milliseconds of (from, to] lost to stalls by a shaper whose burst lasts
   * `burstMs`: each stall's part inside the window, less the burst's time;
   * a stall still running at `to` costs all of its part inside the window,
   * because what the bucket banked during it is sent (and metered) after
   * `to`. A stall that ends before `from` costs nothing: the bytes it banked
   * are extra for the window, which the upper bound allows.
   */
  lostMs(from: number, to: number, burstMs: number): number {
    let lost = 0;
    for (const [a, b] of this.gaps) {
      const overlap = Math.min(b, to) - Math.max(a, from);
      if (overlap <= 0) continue;
      if (b > to) lost += overlap;
      else if (overlap > burstMs) lost += overlap - burstMs;
    }
    return lost;
  }

  /**
   * Waits (bounded by `maxMs` after `from`) until the window (from, to] holds
   * at least `runnableMs` of time the process could run, counted as lostMs
   * counts it; returns `to`. A loaded machine gets a longer window, measured
   * with the same tolerance, instead of a verdict on too little data.
   */
  async windowEnd(from: number, runnableMs: number, burstMs: number, maxMs: number): Promise<number> {
    let to = from + runnableMs;
    for (;;) {
      const wait = to - systemClock.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      // A stall running now is only recorded when it ends: give the watch a tick first.
      await new Promise((r) => setTimeout(r, 5));
      const runnable = to - from - this.lostMs(from, to, burstMs);
      if (runnable >= runnableMs || to - from >= maxMs) return to;
      to = Math.min(from + maxMs, to + (runnableMs - runnable));
    }
  }

  /** The longest stall seen in (from, to], for the diagnostics. */
  longestMs(from: number, to: number): number {
    let longest = 0;
    for (const [a, b] of this.gaps) longest = Math.max(longest, Math.min(b, to) - Math.max(a, from));
    return longest;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/**
 * The bounds a measured rate must meet: at most `cap * (1 + tolerance)`
 * (the window starts after the burst is spent; the tolerance covers the one
 * burst a stall right before the window can bank), and at least
 * `cap * (1 - tolerance)` over the part of the window the process could run.
 * Fails when the machine took more than half the window: the measurement then
 * says nothing about the shaper.
 */
export function rateBounds(cap: number, tolerance: number, windowMs: number, lostMs: number): { low: number; high: number } {
  if (lostMs > windowMs / 2) throw new Error(`the process was stalled for ${lostMs.toFixed(0)} of ${windowMs} ms: the machine is too loaded to measure a rate`);
  return { low: (cap * (1 - tolerance) * (windowMs - lostMs)) / windowMs, high: cap * (1 + tolerance) };
}
