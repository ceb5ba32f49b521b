/** The GCRA rate algorithm (the exact token bucket): its parameters, its transition and its remaining count. */
import { InvalidArgumentError } from "../core/errors.js";
import { positive } from "../core/validate.js";
import type { Outcome } from "./outcome.js";
import type { RateAlgorithm } from "./rate-algorithm.js";

/**
 * GCRA (generic cell rate algorithm), the exact form of a token bucket.
 * A key admits `burst` cost at once and refills at `rate` per `periodMs`.
 */
export interface GcraParams {
  /** Cost replenished per period. */
  readonly rate: number;
  /** Length of the period in ms (default 1000). */
  readonly periodMs: number;
  /** Most cost admitted at once (bucket size). */
  readonly burst: number;
  /** Emission interval: ms per unit of cost (derived). */
  readonly intervalMs: number;
  /** burst · interval (derived): the most debt (TAT − now) a key may carry. */
  readonly toleranceMs: number;
  /** Rounding allowance (derived): a billionth of a unit plus the worst rounding of `burst` additions to the debt. */
  readonly slackMs: number;
  /** toleranceMs + slackMs (derived): the most debt a check may leave. */
  readonly ceilingMs: number;
}

export interface GcraOptions {
  rate: number;
  periodMs?: number;
  burst?: number;
}

export function gcraParams(o: GcraOptions): GcraParams {
  const rate = positive("rate", o.rate);
  const periodMs = positive("periodMs", o.periodMs ?? 1000);
  const burst = positive("burst", o.burst ?? rate);
  const intervalMs = periodMs / rate;
  const toleranceMs = burst * intervalMs;
  // Finite inputs can still overflow the derived times; Infinity would make every check pass.
  if (!Number.isFinite(intervalMs)) throw new InvalidArgumentError("rate", `too small for periodMs ${periodMs}, got ${rate}`);
  if (!Number.isFinite(toleranceMs)) throw new InvalidArgumentError("burst", `too large for the emission interval, got ${burst}`);
  const slack = gcraSlackMs(intervalMs, toleranceMs, burst);
  // Derived once per parameter set because the check's hot path should not recompute them.
  return { rate, periodMs, burst, intervalMs, toleranceMs, slackMs: slack, ceilingMs: toleranceMs + slack };
}

/**
 * The rounding allowance: a billionth of a unit plus the worst rounding of
 * `burst` additions to the debt. The Redis script computes the same
 * expression in the same order, so both stores draw the line at the same double.
 */
export function gcraSlackMs(intervalMs: number, toleranceMs: number, burst: number): number {
  return intervalMs * 1e-9 + (burst + 4) * Number.EPSILON * toleranceMs;
}

// State: the debt (ms of emission time owed; 0 when the bucket is full) and
// the clock reading it is as of. This is TAT − now kept relative on purpose:
// an absolute TAT carries the rounding of the clock's magnitude (epoch
// milliseconds, 1.7e12, have a resolution of 2.4e-4 ms), which cannot hold
// the emission interval of high rates (100,000/s is 0.01 ms) and made a
// fresh key admit one less than burst, or more. The debt never exceeds the
// tolerance, so its rounding stays far below one unit of cost.
const DEBT = 0;
const AT = 1;

/** The debt at `now`. A clock reading earlier than the stored one counts as no time passed. */
function debtAt(s: Float64Array, o: number, now: number): number {
  const elapsed = now - s[o + AT]!;
  const d = s[o + DEBT]! - (elapsed > 0 ? elapsed : 0);
  return d > 0 ? d : 0;
}

/** What `remaining` is derived from: the limit's ceiling, interval and burst. */
export type GcraRemainingParams = Pick<GcraParams, "ceilingMs" | "intervalMs" | "burst">;

/** Whole units of cost that fit on top of `debt`, within [0, floor(burst)]. */
export function remainingAt(debt: number, p: GcraRemainingParams): number {
  const r = Math.floor((p.ceilingMs - debt) / p.intervalMs);
  return r < 0 ? 0 : r > p.burst ? Math.floor(p.burst) : r;
}

/** remainingAt as an Outcome derives it, only when a caller reads it. */
export const remainingOf = remainingAt as (debt: number, p: unknown) => number;

/** Wait (whole ms, >= 1) until the debt has drained enough for `need` to fit. */
function waitMs(debt: number, need: number, p: GcraParams): number {
  let r = Math.max(1, Math.ceil(debt + need - p.toleranceMs - p.slackMs));
  // Verify with the same arithmetic a later check will use, so waiting r always succeeds.
  while (Math.max(0, debt - r) + need > p.ceilingMs) r++;
  return r;
}

/**
 * Answers a check that does not fit at `debt` (the caller has established
 * that it does not). Kept apart so consume and peek stay small for the
 * common, allowing case.
 */
function rejectAt(debt: number, cost: number, p: GcraParams, out: Outcome): void {
  if (cost > p.burst) out.rejectDeferred("insufficient_capacity", remainingOf, debt, p, debt, 0);
  else out.rejectDeferred("rate_limited", remainingOf, debt, p, debt, waitMs(debt, cost * p.intervalMs, p));
}

function consume(s: Float64Array, o: number, now: number, cost: number, p: GcraParams, out: Outcome): void {
  // debtAt, written out so the reference time is read once.
  const elapsed = now - s[o + AT]!;
  const d = s[o + DEBT]! - (elapsed > 0 ? elapsed : 0);
  const debt = d > 0 ? d : 0;
  const next = debt + cost * p.intervalMs;
  // One test for both rejections on the allowing path; rejectAt tells them apart.
  if (cost > p.burst || next > p.ceilingMs) {
    rejectAt(debt, cost, p, out);
    return;
  }
  s[o + DEBT] = next;
  // Never move the reference back: that would count the same time twice
  // (elapsed > 0 is now > at: IEEE subtraction of unequal doubles is never 0).
  if (elapsed > 0) s[o + AT] = now;
  out.allowDeferred(remainingOf, next, p, next);
}

function peek(s: Float64Array, o: number, now: number, cost: number, p: GcraParams, out: Outcome): void {
  const debt = debtAt(s, o, now);
  if (cost > p.burst || debt + cost * p.intervalMs > p.ceilingMs) {
    rejectAt(debt, cost, p, out);
    return;
  }
  out.allowDeferred(remainingOf, debt, p, debt);
}

/**
 * Carries a key's debt across a change of parameters, counted in units of
 * cost: a live key neither gains a free burst nor waits out the old rate's
 * schedule; from `now` on it runs at the new rate.
 */
export function gcraRescale(s: Float64Array, o: number, now: number, from: GcraParams, to: GcraParams): void {
  const debt = debtAt(s, o, now);
  s[o + DEBT] = debt > 0 ? (debt / from.intervalMs) * to.intervalMs : 0;
  if (now > s[o + AT]!) s[o + AT] = now;
}

export const gcra: RateAlgorithm<GcraParams> = {
  kind: "gcra",
  width: 2,
  limit: (p) => p.burst,
  init(s, o) {
    s[o + DEBT] = 0;
    s[o + AT] = -Infinity;
  },
  consume,
  peek,
  isIdle(s, o, now) {
    return debtAt(s, o, now) <= 0;
  },
};
