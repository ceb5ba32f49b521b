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
import { systemClock, type Clock } from "../../src/core/clock.js";

export interface StallWatchOptions {
  /** Gaps between ticks longer than this are stalls (default 5 ms). */
  minGapMs?: number;
  maxGaps?: number;
  /** Where time and the window's waits come from (default the system clock). */
  clock?: Clock;
  /** Sample the event loop with the 1 ms ticker (default true; false when the gaps are given by `noteGap`). */
  sample?: boolean;
}

/**
 * Below this a window's shortfall is float noise: extending by it would only
 * repeat the same sum (a window end and its start ~10^4 ms apart differ from
 * the intended length in the 12th digit).
 */
const EPSILON_MS = 1e-6;

export class StallWatch {
  private readonly gaps: [number, number][] = [];
  private readonly clock: Clock;
  private readonly minGapMs: number;
  private readonly maxGaps: number;
  private last: number;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(o: StallWatchOptions = {}) {
    this.clock = o.clock ?? systemClock;
    this.minGapMs = o.minGapMs ?? 5;
    this.maxGaps = o.maxGaps ?? 100_000;
    this.last = this.clock.now();
    if (o.sample ?? true) {
      this.timer = setInterval(() => {
        const now = this.clock.now();
        if (now - this.last > this.minGapMs) this.noteGap(this.last, now);
        this.last = now;
      }, 1);
    }
  }

  /** Records that the process did not run in (a, b). Gaps come in time order. */
  noteGap(a: number, b: number): void {
    if (this.gaps.length < this.maxGaps) this.gaps.push([a, b]);
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
   * Milliseconds of (from, to] lost to stalls by a shaper of `cap` bytes/s
   * and `burst` bytes, found by replaying its bucket from the bytes that
   * arrived (`arrivals`, each a meter's times and running totals; several
   * are merged, for connections that share a bucket). lostMs assumes the
   * bucket is empty whenever a stall begins; under CPU hogs stalls come
   * closer together (a hundred in two seconds) than the relay needs to
   * spend the burst the last one banked, so a stall can begin with part of
   * that burst unspent, bank less than a burst, and cost more than
   * (stall - burst time).
   *
   * A stall's cost is the time the replayed bucket was full (tokens it could
   * not keep) during it, but no more than a correct shaper can lose: a
   * stall of S ms that begins with u ms of credit unspent loses at most
   * S + u - (burst time), where u is what the previous stall banked (at most
   * a burst) less the time the process ran since, during which the relay,
   * sending faster than the cap whenever it holds credit, spends at least
   * 1 ms of credit per ms. So a shaper that leaves its bucket full while it
   * runs (delivers short) is not excused: on a quiet machine not at all,
   * under load no more than lostMs plus the credit it could not have spent.
   * A stall still running at `to` costs all of its part inside the window,
   * as in lostMs (what it banked is sent after the window).
   * The bucket starts the window empty (windows start after the first
   * burst is spent).
   */
  bucketLostMs(from: number, to: number, cap: number, burst: number, arrivals: readonly { t: readonly number[]; total: readonly number[] }[]): number {
    const interval = 1000 / cap;
    const tolerance = burst * interval;
    const events: [number, number][] = [];
    for (const m of arrivals) {
      for (let k = 0; k < m.t.length; k++) {
        const t = m.t[k]!;
        if (t > from && t <= to) events.push([t, m.total[k]! - (k > 0 ? m.total[k - 1]! : 0)]);
      }
    }
    events.sort((x, y) => x[0] - y[0]);
    // Each stall in the window: where its cost is counted, and the most it may cost.
    const stalls: { a: number; b: number; most: number; full: number; running: boolean }[] = [];
    let previousEnd = -Infinity;
    let banked = 0;
    for (const [a, b] of this.gaps) {
      if (b <= from - tolerance || a >= to) {
        if (a >= to) break;
        previousEnd = b;
        banked = Math.min(tolerance, b - a);
        continue;
      }
      const unspent = Math.max(0, banked - (a - previousEnd));
      const part = Math.min(b, to) - Math.max(a, from);
      if (b > to) stalls.push({ a: Math.max(a, from), b: to, most: part, full: part, running: true });
      else if (b > from) stalls.push({ a: Math.max(a, from), b, most: Math.max(0, part + unspent - tolerance), full: 0, running: false });
      banked = Math.min(tolerance, unspent + (b - a));
      previousEnd = b;
    }
    /** Adds the parts of (x, y] inside a stall to that stall's full time. */
    const fullIn = (x: number, y: number): void => {
      let reached = x;
      for (const st of stalls) {
        if (st.running) continue;
        const lo = Math.max(st.a, reached);
        const hi = Math.min(st.b, y);
        if (hi > lo) {
          st.full += hi - lo;
          reached = hi;
        }
      }
    };
    let debt = tolerance;
    let at = from;
    const advance = (t: number): void => {
      const elapsed = t - at;
      // The bucket was full from at + debt to t: the tokens of that time were thrown away.
      if (elapsed > debt) fullIn(at + debt, t);
      debt = Math.max(0, debt - elapsed);
      at = t;
    };
    for (const [t, bytes] of events) {
      advance(t);
      debt += bytes * interval;
    }
    advance(to);
    let lost = 0;
    for (const st of stalls) lost += Math.min(st.full, st.most);
    return lost;
  }

  /**
   * The end of the shortest window from `from` that holds `runnableMs` of
   * time the process could run, by the stalls recorded so far, and no later
   * than `from + maxMs`. A window never ends inside a recorded stall: it is
   * moved past the stall's end and the burst the shaper banked during it
   * (extending by the shortfall instead lands inside the same stall again,
   * and crept through it by the stall's start offset per step, some
   * microseconds on a loaded machine: a window that never ended).
   * Terminates: each step either passes a recorded stall or finds no
   * shortfall.
   */
  planEnd(from: number, runnableMs: number, burstMs: number, maxMs: number): number {
    const last = from + maxMs;
    let to = from + runnableMs;
    for (;;) {
      if (to >= last) return last;
      const inside = this.gaps.find(([a, b]) => a < to && to < b);
      if (inside !== undefined) {
        to = Math.max(to, inside[1] + burstMs);
        continue;
      }
      const shortfall = runnableMs - (to - from - this.lostMs(from, to, burstMs));
      if (shortfall <= EPSILON_MS) return to;
      to += shortfall;
    }
  }

  /**
   * Waits until the window (from, to] holds at least `runnableMs` of time
   * the process could run, counted as lostMs counts it, or until
   * `from + maxMs`; returns `to`. A loaded machine gets a longer window,
   * measured with the same tolerance, instead of a verdict on too little
   * data. Bounded: the end only moves forward, never past `from + maxMs`.
   */
  async windowEnd(from: number, runnableMs: number, burstMs: number, maxMs: number): Promise<number> {
    let to = this.planEnd(from, runnableMs, burstMs, maxMs);
    for (;;) {
      const wait = to - this.clock.now();
      if (wait > 0) await this.sleep(wait);
      // A stall running now is only recorded when it ends: give the watch a tick first.
      await this.sleep(5);
      const next = this.planEnd(from, runnableMs, burstMs, maxMs);
      if (next <= to) return to;
      to = next;
    }
  }

  /** How many stalls overlap (from, to], for the diagnostics. */
  countIn(from: number, to: number): number {
    return this.gaps.filter(([a, b]) => b > from && a < to).length;
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

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => this.clock.setTimer(r, ms));
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
