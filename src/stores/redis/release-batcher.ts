/**
 * Batches lease releases into one call of the release script per turn of
 * the event loop (per Cluster slot).
 */
import { TurnBatcher } from "./turn-batcher.js";

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
  private readonly turns: TurnBatcher<Batch>;

  constructor(
    private readonly call: ReleaseCall,
    maxBatch: number,
    cluster: boolean,
  ) {
    this.turns = new TurnBatcher<Batch>(() => ({ keys: [], args: [], resolvers: [] }), (b) => this.send(b), maxBatch, cluster);
  }

  /** Resolves whether the lease was held (undefined when Redis did not answer). */
  add(key: string, now: string, id: string): Promise<boolean | undefined> {
    return new Promise((resolve) => {
      const slot = this.turns.slot(key);
      const b = this.turns.batch(slot);
      b.keys.push(key);
      b.args.push(now, id);
      b.resolvers.push(resolve);
      this.turns.joined(b, slot, b.keys.length);
    });
  }

  private send(b: Batch): void {
    const settle = (reply: unknown): void => {
      const ok = typeof reply === "string" && reply.length === b.resolvers.length;
      for (let i = 0; i < b.resolvers.length; i++) b.resolvers[i]!(ok ? reply[i] === "1" : undefined);
    };
    this.call(b.keys, b.args).then(settle, () => settle(undefined));
  }
}
