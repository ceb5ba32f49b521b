/** A rate limit's state in the memory store. */
import type { LimitSpec } from "../algorithms/limit-spec.js";
import type { Outcome } from "../algorithms/outcome.js";
import type { RateAlgorithm } from "../algorithms/rate-algorithm.js";
import type { RateTable } from "./store.js";
import type { MemoryTable } from "./memory-table.js";

/**
 * A rate limit's state in the memory store: the algorithm's transition run
 * in place on the key's slot of a MemoryTable. Nothing is allocated: the
 * outcome is written into the caller's Outcome.
 */
export class MemoryRateTable implements RateTable<true> {
  private readonly algo: RateAlgorithm<unknown>;
  private readonly params: unknown;

  constructor(
    readonly name: string,
    readonly spec: LimitSpec,
    /** @internal */
    readonly table: MemoryTable,
  ) {
    this.algo = spec.algorithm as RateAlgorithm<unknown>;
    this.params = spec.params;
  }

  get size(): number {
    return this.table.size;
  }

  consume(key: string, cost: number, now: number, out: Outcome): Outcome {
    const t = this.table;
    // The slot first: inserting may grow (replace) the state array.
    const slot = t.slot(key, now);
    this.algo.consume(t.state, slot * t.width, now, cost, this.params, out);
    return out;
  }

  peek(key: string, cost: number, now: number, out: Outcome): Outcome {
    const slot = this.table.find(key);
    if (slot < 0) {
      const fresh = new Float64Array(this.algo.width);
      this.algo.init(fresh, 0);
      this.algo.peek(fresh, 0, now, cost, this.params, out);
    } else {
      this.algo.peek(this.table.state, slot * this.algo.width, now, cost, this.params, out);
    }
    return out;
  }

  delete(key: string): void {
    this.table.delete(key);
  }

  /** Consumes like `consume` after copying the key's state into `undo` (for an all-or-nothing apply). */
  consumeUndoable(key: string, cost: number, now: number, out: Outcome, undo: Float64Array): Outcome {
    const t = this.table;
    const off = t.slot(key, now) * t.width;
    for (let i = 0; i < t.width; i++) undo[i] = t.state[off + i]!;
    this.algo.consume(t.state, off, now, cost, this.params, out);
    return out;
  }

  /** Restores the state saved by consumeUndoable (no-op if the key was evicted since). */
  undo(key: string, undo: Float64Array): void {
    const slot = this.table.find(key);
    if (slot < 0) return;
    const off = slot * this.table.width;
    for (let i = 0; i < this.table.width; i++) this.table.state[off + i] = undo[i]!;
  }
}
