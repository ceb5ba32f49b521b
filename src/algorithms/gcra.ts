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
  /** Rounding allowance (derived, see slackMs). */
  readonly slackMs: number;
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
  const slack = intervalMs * 1e-9 + (burst + 4) * Number.EPSILON * toleranceMs;
  return { rate, periodMs, burst, intervalMs, toleranceMs, slackMs: slack };
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

/**
 * Rounding allowance: a billionth of a unit plus the worst rounding of
 * `burst` additions to the debt. Derived once per parameter set (gcraParams)
 * because the check's hot path should not recompute it.
 */
function slackMs(p: GcraParams): number {
  return p.slackMs;
}

function remainingAt(debt: number, slack: number, p: GcraParams): number {
  const r = Math.floor((p.toleranceMs + slack - debt) / p.intervalMs);
  return r < 0 ? 0 : r > p.burst ? Math.floor(p.burst) : r;
}

/** Wait (whole ms, >= 1) until the debt has drained enough for `need` to fit. */
function waitMs(debt: number, need: number, slack: number, p: GcraParams): number {
  let r = Math.max(1, Math.ceil(debt + need - p.toleranceMs - slack));
  // Verify with the same arithmetic a later check will use, so waiting r always succeeds.
  while (Math.max(0, debt - r) + need > p.toleranceMs + slack) r++;
  return r;
}

function evaluate(s: Float64Array, o: number, now: number, cost: number, p: GcraParams, out: Outcome, write: boolean): void {
  const debt = debtAt(s, o, now);
  const slack = slackMs(p);
  if (cost > p.burst) {
    out.reject("insufficient_capacity", remainingAt(debt, slack, p), debt, 0);
    return;
  }
  const need = cost * p.intervalMs;
  if (debt + need > p.toleranceMs + slack) {
    out.reject("rate_limited", remainingAt(debt, slack, p), debt, waitMs(debt, need, slack, p));
    return;
  }
  if (!write) {
    out.allow(remainingAt(debt, slack, p), debt);
    return;
  }
  s[o + DEBT] = debt + need;
  // Never move the reference back: that would count the same time twice.
  if (now > s[o + AT]!) s[o + AT] = now;
  out.allow(remainingAt(debt + need, slack, p), debt + need);
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
  consume(s, o, now, cost, p, out) {
    evaluate(s, o, now, cost, p, out, true);
  },
  peek(s, o, now, cost, p, out) {
    evaluate(s, o, now, cost, p, out, false);
  },
  isIdle(s, o, now) {
    return debtAt(s, o, now) <= 0;
  },
};
