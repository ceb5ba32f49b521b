/**
 * Randomness seam: components that sample (jitter, timing normalization)
 * take an Rng so tests can use a seeded, reproducible sequence.
 */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
}

export const systemRng: Rng = { next: () => Math.random() };

/** Small, fast, seeded generator (mulberry32). Not for cryptography. */
export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  return {
    next(): number {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
  };
}
