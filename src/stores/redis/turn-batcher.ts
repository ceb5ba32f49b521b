/**
 * Gathers the operations of one turn of the event loop into batches, one per
 * Cluster slot (a single one without Cluster), and hands each to `send` when
 * it is full or on setImmediate. The rate and release batchers share it.
 */
import { slotOf } from "./key-names.js";

export class TurnBatcher<B> {
  private pending: B | undefined;
  private bySlot: Map<number, B> | undefined;
  private scheduled = false;

  constructor(
    private readonly open: () => B,
    private readonly send: (batch: B) => void,
    private readonly maxBatch: number,
    private readonly cluster: boolean,
  ) {}

  /** The slot whose batch an operation on `key` joins (-1 without Cluster). */
  slot(key: string): number {
    return this.cluster ? slotOf(key) : -1;
  }

  /** The open batch of `slot`, opened if there is none. */
  batch(slot: number): B {
    if (!this.cluster) return (this.pending ??= this.open());
    this.bySlot ??= new Map();
    let b = this.bySlot.get(slot);
    if (b === undefined) {
      b = this.open();
      this.bySlot.set(slot, b);
    }
    return b;
  }

  /** Called once an operation joined `b`, which now holds `size`: sends it when full, else makes sure the turn's flush is due. */
  joined(b: B, slot: number, size: number): void {
    if (size >= this.maxBatch) this.take(b, slot);
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.pending !== undefined) this.take(this.pending, -1);
    if (this.bySlot !== undefined) {
      const batches = this.bySlot;
      this.bySlot = undefined;
      for (const b of batches.values()) this.take(b, undefined);
    }
  };

  private take(b: B, slot: number | undefined): void {
    if (b === this.pending) this.pending = undefined;
    else if (slot !== undefined) this.bySlot?.delete(slot);
    this.send(b);
  }
}
