/** The fixed-window rate algorithm: its parameters and its transition over two numbers of state. */
import { integerAtLeast, positive } from "../core/validate.js";
import { type Outcome, msUntil } from "./outcome.js";
import type { RateAlgorithm } from "./rate-algorithm.js";

/**
 * Fixed window: at most `permitLimit` permits per window. Windows are
 * aligned to multiples of `windowMs` on the store's clock, so every instance
 * that shares a clock (Redis TIME) agrees on where a window starts.
 * The FIFO queue in front of the window lives in the limiter, not here.
 */
export interface FixedWindowParams {
  readonly permitLimit: number;
  readonly windowMs: number;
}

export function fixedWindowParams(o: { permitLimit: number; windowMs: number }): FixedWindowParams {
  return {
    permitLimit: integerAtLeast("permitLimit", o.permitLimit, 1),
    windowMs: positive("windowMs", o.windowMs),
  };
}

const START = 0;
const COUNT = 1;

/** Start of the window containing `now`, never earlier than the stored one (clock regressions stay in it). */
function currentStart(s: Float64Array, o: number, now: number, p: FixedWindowParams): number {
  const aligned = Math.floor(now / p.windowMs) * p.windowMs;
  const stored = s[o + START]!;
  return aligned > stored ? aligned : stored;
}

export function windowEnd(s: Float64Array, o: number, now: number, p: FixedWindowParams): number {
  return currentStart(s, o, now, p) + p.windowMs;
}

function evaluate(s: Float64Array, o: number, now: number, cost: number, p: FixedWindowParams, out: Outcome, write: boolean): void {
  const start = currentStart(s, o, now, p);
  const used = start === s[o + START] ? s[o + COUNT]! : 0;
  const end = start + p.windowMs;
  if (cost > p.permitLimit) {
    out.reject("insufficient_capacity", p.permitLimit - used, end - now, 0);
    return;
  }
  if (used + cost > p.permitLimit) {
    out.reject("rate_limited", p.permitLimit - used, end - now, msUntil(now, end));
    return;
  }
  if (write) {
    s[o + START] = start;
    s[o + COUNT] = used + cost;
    out.allow(p.permitLimit - used - cost, end - now);
  } else {
    out.allow(p.permitLimit - used, end - now);
  }
}

export const fixedWindow: RateAlgorithm<FixedWindowParams> = {
  kind: "fixed_window",
  width: 2,
  limit: (p) => p.permitLimit,
  init(s, o) {
    s[o + START] = -Infinity;
    s[o + COUNT] = 0;
  },
  consume(s, o, now, cost, p, out) {
    evaluate(s, o, now, cost, p, out, true);
  },
  peek(s, o, now, cost, p, out) {
    evaluate(s, o, now, cost, p, out, false);
  },
  isIdle(s, o, now, p) {
    return s[o + START]! + p.windowMs <= now;
  },
};
