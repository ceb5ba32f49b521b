/** The sliding-window counter rate algorithm: its parameters and its transition over three numbers of state. */
import { integerAtLeast, positive } from "../core/validate.js";
import { type Outcome, msUntil } from "./outcome.js";
import type { RateAlgorithm } from "./rate-algorithm.js";

/**
 * Sliding-window counter: the count of the current aligned window plus the
 * previous window's count weighted by how much of it still overlaps the
 * sliding window ending now. Two counters per key instead of a log.
 */
export interface SlidingWindowParams {
  readonly limit: number;
  readonly windowMs: number;
}

export function slidingWindowParams(o: { limit: number; windowMs: number }): SlidingWindowParams {
  return { limit: integerAtLeast("limit", o.limit, 1), windowMs: positive("windowMs", o.windowMs) };
}

const START = 0;
const CURR = 1;
const PREV = 2;

interface View {
  start: number;
  curr: number;
  prev: number;
}

/** The stored counters rolled forward to the window containing `now`. */
function roll(s: Float64Array, o: number, now: number, p: SlidingWindowParams): View {
  const stored = s[o + START]!;
  const aligned = Math.floor(now / p.windowMs) * p.windowMs;
  if (!(aligned > stored)) return { start: stored, curr: s[o + CURR]!, prev: s[o + PREV]! };
  if (aligned - stored === p.windowMs) return { start: aligned, curr: 0, prev: s[o + CURR]! };
  return { start: aligned, curr: 0, prev: 0 };
}

function estimate(v: View, now: number, p: SlidingWindowParams): number {
  const elapsed = Math.min(Math.max(now - v.start, 0), p.windowMs);
  return v.prev * (1 - elapsed / p.windowMs) + v.curr;
}

/** The earliest time a check of `cost` fits, given the rolled view (cost <= limit). */
function allowTime(v: View, cost: number, p: SlidingWindowParams): number {
  const room = p.limit - v.curr - cost;
  if (room >= 0) {
    // prev · (1 − e/W) <= room  ⇒  e >= W · (1 − room/prev)
    if (v.prev <= room) return v.start;
    return v.start + p.windowMs * (1 - room / v.prev);
  }
  // Not in this window: in the next one the current count becomes the weighted one.
  const nextRoom = p.limit - cost;
  return v.start + p.windowMs + p.windowMs * (1 - nextRoom / v.curr);
}

/** Whether a check of `cost` fits at time `t` (the stored state rolled to it). */
function fitsAt(s: Float64Array, o: number, t: number, cost: number, p: SlidingWindowParams): boolean {
  return estimate(roll(s, o, t, p), t, p) + cost <= p.limit + 1e-9;
}

function evaluate(s: Float64Array, o: number, now: number, cost: number, p: SlidingWindowParams, out: Outcome, write: boolean): void {
  const v = roll(s, o, now, p);
  const est = estimate(v, now, p);
  const remaining = Math.max(0, Math.floor(p.limit - est + 1e-9));
  const resetMs = Math.max(0, (v.curr > 0 ? v.start + 2 * p.windowMs : v.start + p.windowMs) - now);
  if (cost > p.limit) {
    out.reject("insufficient_capacity", remaining, resetMs, 0);
    return;
  }
  if (est + cost > p.limit + 1e-9) {
    let r = msUntil(now, allowTime(v, cost, p));
    // Rounding in the weighting can put the computed instant a hair off the
    // true one either way: step forward until the check fits at now + r, so
    // waiting r always succeeds, and back while it fits 1 ms earlier, so r
    // is the earliest whole millisecond.
    for (let i = 0; i < 4 && !fitsAt(s, o, now + r, cost, p); i++) r += 1;
    for (let i = 0; i < 2 && r > 1 && fitsAt(s, o, now + r - 1, cost, p); i++) r -= 1;
    out.reject("rate_limited", remaining, resetMs, Math.max(r, 1));
    return;
  }
  if (write) {
    s[o + START] = v.start;
    s[o + CURR] = v.curr + cost;
    s[o + PREV] = v.prev;
    out.allow(Math.max(0, Math.floor(p.limit - est - cost + 1e-9)), resetMs);
  } else {
    out.allow(remaining, resetMs);
  }
}

export const slidingWindow: RateAlgorithm<SlidingWindowParams> = {
  kind: "sliding_window",
  width: 3,
  limit: (p) => p.limit,
  init(s, o) {
    s[o + START] = -Infinity;
    s[o + CURR] = 0;
    s[o + PREV] = 0;
  },
  consume(s, o, now, cost, p, out) {
    evaluate(s, o, now, cost, p, out, true);
  },
  peek(s, o, now, cost, p, out) {
    evaluate(s, o, now, cost, p, out, false);
  },
  isIdle(s, o, now, p) {
    return s[o + START]! + 2 * p.windowMs <= now;
  },
};
