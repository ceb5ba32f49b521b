import { positive } from "../core/validate.js";
import { type Outcome, msUntil } from "./outcome.js";
import type { RateAlgorithm } from "./rate-algorithm.js";

/**
 * GCRA (generic cell rate algorithm), the exact form of a token bucket.
 * State is one number, the theoretical arrival time (TAT). A key admits
 * `burst` cost at once and refills at `rate` per `periodMs`.
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
  /** burst · interval (derived): how far TAT may run ahead of now. */
  readonly toleranceMs: number;
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
  return { rate, periodMs, burst, intervalMs, toleranceMs: burst * intervalMs };
}

const TAT = 0;

function remainingAt(tat: number, now: number, p: GcraParams): number {
  const r = Math.floor((p.toleranceMs - (tat - now)) / p.intervalMs + 1e-9);
  return r < 0 ? 0 : r > p.burst ? Math.floor(p.burst) : r;
}

export const gcra: RateAlgorithm<GcraParams> = {
  kind: "gcra",
  width: 1,
  limit: (p) => p.burst,
  init(s, o) {
    s[o + TAT] = -Infinity;
  },
  consume(s, o, now, cost, p, out) {
    if (cost > p.burst) {
      const tat = Math.max(s[o + TAT]!, now);
      out.reject("insufficient_capacity", remainingAt(tat, now, p), tat - now, 0);
      return;
    }
    // A clock that went backwards only makes `now` smaller: TAT never moves
    // back, so no refill can come of it.
    const tat = Math.max(s[o + TAT]!, now);
    const next = tat + cost * p.intervalMs;
    const allowAt = next - p.toleranceMs;
    if (now < allowAt) {
      out.reject("rate_limited", remainingAt(tat, now, p), tat - now, msUntil(now, allowAt));
      return;
    }
    s[o + TAT] = next;
    out.allow(remainingAt(next, now, p), next - now);
  },
  peek(s, o, now, cost, p, out) {
    const tat = Math.max(s[o + TAT]!, now);
    if (cost > p.burst) {
      out.reject("insufficient_capacity", remainingAt(tat, now, p), tat - now, 0);
      return;
    }
    const allowAt = tat + cost * p.intervalMs - p.toleranceMs;
    if (now < allowAt) out.reject("rate_limited", remainingAt(tat, now, p), tat - now, msUntil(now, allowAt));
    else out.allow(remainingAt(tat, now, p), tat - now);
  },
  isIdle(s, o, now) {
    return s[o + TAT]! <= now;
  },
};
