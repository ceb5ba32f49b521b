/**
 * Bounded log-normal sampling for timing normalization.
 *
 * Round-trip times and server think times are products of many small
 * independent factors, so they look log-normal, not uniform. A rejection
 * delay drawn from a log-normal whose median is the geometric mean of
 * [floor, ceiling] blends into that background; a uniform one does not.
 */
import type { Rng } from "../../core/random.js";

/** No configuration, however wrong, makes a rejection wait longer than this (10 minutes). */
export const MAX_DELAY_MS = 600_000;

/**
 * sigma = ln(ceiling / floor) / 4.65: 4.65 is about 2 x 2.326 (the z-score of
 * the 99th percentile), so about 99% of raw samples already fall in
 * [floor, ceiling] before the clamp and the clamp adds little mass at the edges.
 */
export const SIGMA_DIVISOR = 4.65;

export interface DelayBounds {
  floorMs: number;
  ceilingMs: number;
}

/**
 * Turns any pair of numbers into usable bounds without throwing: a negative,
 * NaN or infinite floor counts as 0; a bad ceiling collapses onto the floor;
 * an inverted pair becomes the fixed delay `floor`; both are capped at
 * MAX_DELAY_MS. Misconfiguration must never stall or crash a rejection path.
 */
export function normalizeBounds(floorMs: number, ceilingMs: number): DelayBounds {
  const floor = Number.isFinite(floorMs) && floorMs > 0 ? Math.min(floorMs, MAX_DELAY_MS) : 0;
  let ceiling = Number.isFinite(ceilingMs) && ceilingMs > 0 ? Math.min(ceilingMs, MAX_DELAY_MS) : floor;
  if (ceiling < floor) ceiling = floor;
  return { floorMs: floor, ceilingMs: ceiling };
}

/** A uniform draw in (0, 1], sanitised so a misbehaving Rng cannot produce log(0) or NaN. */
function unitOpen(rng: Rng): number {
  const u = rng.next();
  if (!(u >= 0 && u < 1)) return 0.5;
  return 1 - u;
}

/** One standard normal draw (Box-Muller; the second value of the pair is discarded to keep the Rng stateless here). */
export function standardNormal(rng: Rng): number {
  const u1 = unitOpen(rng);
  const u2 = unitOpen(rng);
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/**
 * A delay in [floor, ceiling] milliseconds:
 * - floor = ceiling: exactly that (a fixed delay);
 * - floor = 0: uniform on [0, ceiling] (a log-normal cannot be anchored at 0);
 * - otherwise log-normal with median sqrt(floor * ceiling) and
 *   sigma = ln(ceiling / floor) / 4.65, clamped to the bounds.
 * Inverted or non-finite bounds are normalised first (see normalizeBounds).
 */
export function sampleBoundedLogNormal(floorMs: number, ceilingMs: number, rng: Rng): number {
  const { floorMs: floor, ceilingMs: ceiling } = normalizeBounds(floorMs, ceilingMs);
  if (ceiling === floor) return floor;
  if (floor === 0) {
    const u = rng.next();
    return u >= 0 && u < 1 ? u * ceiling : ceiling / 2;
  }
  return sampleLogNormalClamped(Math.sqrt(floor * ceiling), Math.log(ceiling / floor) / SIGMA_DIVISOR, floor, ceiling, rng);
}

/**
 * A log-normal draw with the given median and sigma, clamped to [lo, hi].
 * A non-finite result (only possible with a broken Rng) becomes the median.
 */
export function sampleLogNormalClamped(median: number, sigma: number, lo: number, hi: number, rng: Rng): number {
  const x = median * Math.exp(sigma * standardNormal(rng));
  if (!Number.isFinite(x)) return Math.min(hi, Math.max(lo, median));
  return Math.min(hi, Math.max(lo, x));
}
