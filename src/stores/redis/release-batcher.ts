import { slotOf } from "./key-names.js";

/** Runs one call of the release script. Resolves undefined on any failure; never rejects. */
export type ReleaseCall = (keys: string[], args: string[]) => Promise<unknown>;

interface Batch {
  keys: string[];
  /** now and id of each key, as the release script reads them. */
  args: string[];
  resolvers: ((released: boolean | undefined) => void)[];
}

/**
 * Gathers the lease releases of one turn of the event loop (the
 * connections that ended together, each with its caps' leases) into one
 * call of the release script, as the rate batcher does for rate checks:
 * one script call and one deadline timer for many releases. Sent on
 * setImmediate or at `maxBatch` releases; on Cluster, one batch per slot.
 */
export class ReleaseBatcher {
  private pending: Batch | undefined;
  private bySlot: Map<number, Batch> | undefined;
  private scheduled = false;

  constructor(
    private readonly call: ReleaseCall,
    private readonly maxBatch: number,
    private readonly cluster: boolean,
  ) {}

  /** Resolves whether the lease was held (undefined when Redis did not answer). */
  add(key: string, now: string, id: string): Promise<boolean | undefined> {
    return new Promise((resolve) => {
      const slot = this.cluster ? slotOf(key) : -1;
      const b = this.batchFor(slot);
      b.keys.push(key);
      b.args.push(now, id);
      b.resolvers.push(resolve);
      if (b.keys.length >= this.maxBatch) this.send(b, slot);
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  private batchFor(slot: number): Batch {
    if (!this.cluster) return (this.pending ??= { keys: [], args: [], resolvers: [] });
    this.bySlot ??= new Map();
    let b = this.bySlot.get(slot);
    if (b === undefined) {
      b = { keys: [], args: [], resolvers: [] };
      this.bySlot.set(slot, b);
    }
    return b;
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.pending !== undefined) this.send(this.pending, -1);
    if (this.bySlot !== undefined) {
      const batches = this.bySlot;
      this.bySlot = undefined;
      for (const b of batches.values()) this.send(b, undefined);
    }
  };

  private send(b: Batch, slot: number | undefined): void {
    if (b === this.pending) this.pending = undefined;
    else if (slot !== undefined) this.bySlot?.delete(slot);
    const settle = (reply: unknown): void => {
      const ok = typeof reply === "string" && reply.length === b.resolvers.length;
      for (let i = 0; i < b.resolvers.length; i++) b.resolvers[i]!(ok ? reply[i] === "1" : undefined);
    };
    this.call(b.keys, b.args).then(settle, () => settle(undefined));
  }
}
