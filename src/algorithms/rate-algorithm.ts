/** The shape every rate algorithm has for the stores: a pure transition over a few numbers of state. */
import type { Outcome } from "./outcome.js";

/**
 * A rate algorithm as the stores see it: a pure transition over a few numbers
 * of state kept at `s[o .. o + width)`. `consume` writes the next state in
 * place only when it allows (a rejected check consumes nothing); `peek` never
 * writes. Neither keeps hidden state, reads a clock or does I/O: the store
 * supplies `now` and makes read-apply-write atomic.
 */
export interface RateAlgorithm<P> {
  readonly kind: string;
  /** How many numbers of state one key needs. */
  readonly width: number;
  /** The capacity reported as `Decision.limit`. */
  limit(p: P): number;
  /** Writes the state of a key never seen (or expired). */
  init(s: Float64Array, o: number): void;
  consume(s: Float64Array, o: number, now: number, cost: number, p: P, out: Outcome): void;
  /** Reports what a check of `cost` would answer, without changing state. */
  peek(s: Float64Array, o: number, now: number, cost: number, p: P, out: Outcome): void;
  /** True when the state is indistinguishable from a fresh key at `now`, so the store may drop it. */
  isIdle(s: Float64Array, o: number, now: number, p: P): boolean;
}
