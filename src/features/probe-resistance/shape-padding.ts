/**
 * Shape padding for masked connections: when a prober finishes sending
 * (its FIN), the gateway may append filler to what it sent on to the mask
 * host, so the length of the gateway -> mask host stream falls into a few
 * coarse buckets instead of telling, to the byte, how much the prober sent
 * and where the gateway stopped classifying. Whoever watches that stream
 * (the mask host's operator, or a censor on the path when the mask host is
 * remote) then learns a bucket, not a length. What the prober itself
 * receives is never padded: it stays the mask host's answer byte for byte.
 *
 * Buckets: the smallest floor·2^k at or above the total, capped; a total
 * above the cap is left as it is, or, with blur, gets U[0..blurMax] extra
 * bytes (U[1..blurMax] in aggressive mode, so the exact length never shows).
 */
import { type Rng, systemRng } from "../../core/random.js";
import { InvalidArgumentError } from "../../core/errors.js";

export interface ShapePaddingOptions {
  /** Smallest bucket (default 512). */
  floor?: number;
  /** Largest bucket (default 4096); totals above it are not rounded up. */
  cap?: number;
  /** Above the cap: add U[0..blurMax] bytes (0 = no blur, the default). */
  blurMax?: number;
  /** Above the cap, blur adds at least one byte. */
  aggressive?: boolean;
}

export const SHAPE_DEFAULTS = { floor: 512, cap: 4096, blurMax: 0 } as const;

/** Validated options with defaults; throws InvalidArgumentError naming the field. */
export function shapePaddingOptions(o: ShapePaddingOptions = {}): Required<ShapePaddingOptions> {
  const floor = o.floor ?? SHAPE_DEFAULTS.floor;
  const cap = o.cap ?? SHAPE_DEFAULTS.cap;
  const blurMax = o.blurMax ?? SHAPE_DEFAULTS.blurMax;
  if (!Number.isInteger(floor) || floor < 1) throw new InvalidArgumentError("floor", "must be an integer >= 1");
  if (!Number.isInteger(cap) || cap < floor) throw new InvalidArgumentError("cap", "must be an integer >= floor");
  if (!Number.isInteger(blurMax) || blurMax < 0) throw new InvalidArgumentError("blurMax", "must be an integer >= 0");
  return { floor, cap, blurMax, aggressive: o.aggressive ?? false };
}

/** The stream length after padding `total` bytes (pure apart from the blur draw). */
export function paddedLength(total: number, o: ShapePaddingOptions = {}, rng: Rng = systemRng): number {
  const { floor, cap, blurMax, aggressive } = shapePaddingOptions(o);
  if (total <= 0) return total;
  if (total <= cap) {
    let bucket = floor;
    while (bucket < total) bucket *= 2;
    return Math.min(bucket, cap);
  }
  if (blurMax === 0) return total;
  const low = aggressive ? 1 : 0;
  const extra = low + Math.floor(rng.next() * (blurMax - low + 1));
  return total + Math.min(extra, blurMax);
}

/** The filler for a stream of `total` bytes: random bytes (empty when nothing is added). */
export function shapePadding(total: number, o: ShapePaddingOptions = {}, rng: Rng = systemRng): Buffer {
  const n = paddedLength(total, o, rng) - total;
  const b = Buffer.allocUnsafe(Math.max(0, n));
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(rng.next() * 256);
  return b;
}
