import { Outcome, type RejectReason } from "../../algorithms/outcome.js";
import { hashTag } from "./keys.js";

/** Runs one call of the rate script. Resolves undefined on any failure; never rejects. */
export type RateCall = (keys: string[], args: string[]) => Promise<unknown>;

/** Operations of one batch that share a limit, a clock reading and a flag. */
interface Group {
  spec: string;
  now: string;
  flag: string;
  keys: string[];
  costs: string[];
  resolvers: ((o: Outcome | undefined) => void)[];
}

class Batch {
  readonly groups: Group[] = [];
  /** Distinct keys of the batch (Redis's work per call grows with them). */
  readonly keys = new Set<string>();
  size = 0;
  private last: Group | undefined;

  group(spec: string, now: string, flag: string): Group {
    const l = this.last;
    if (l !== undefined && l.spec === spec && l.now === now && l.flag === flag) return l;
    let g = this.groups.find((x) => x.spec === spec && x.now === now && x.flag === flag);
    if (g === undefined) {
      g = { spec, now, flag, keys: [], costs: [], resolvers: [] };
      this.groups.push(g);
    }
    this.last = g;
    return g;
  }
}

/**
 * Gathers the rate operations that arrive in one turn of the event loop and
 * sends them to Redis as one script call that decides them all atomically:
 * one round trip and one script invocation for many decisions, which is
 * what lifts throughput past one EVALSHA per decision. A batch is sent on
 * setImmediate (after every promise continuation of this turn has had the
 * chance to join it) or as soon as it holds `maxBatch` operations, so that
 * under load several batches are in flight and Node and Redis work at the
 * same time. On Cluster, operations are grouped by hash tag so each call
 * stays in one slot.
 */
export class RateBatcher {
  private pending: Batch | undefined;
  private byTag: Map<string, Batch> | undefined;
  private scheduled = false;

  constructor(
    private readonly call: RateCall,
    private readonly maxBatch: number,
    private readonly maxKeys: number,
    private readonly cluster: boolean,
  ) {}

  add(key: string, spec: string, cost: number, now: string, flag: string): Promise<Outcome | undefined> {
    return new Promise((resolve) => {
      const tag = this.cluster ? hashTag(key) : "";
      const b = this.batchFor(tag);
      const g = b.group(spec, now, flag);
      g.keys.push(key);
      g.costs.push(cost === 1 ? "1" : String(cost));
      g.resolvers.push(resolve);
      b.keys.add(key);
      if (++b.size >= this.maxBatch || b.keys.size >= this.maxKeys) this.send(b, tag);
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  private batchFor(tag: string): Batch {
    if (!this.cluster) return (this.pending ??= new Batch());
    this.byTag ??= new Map();
    let b = this.byTag.get(tag);
    if (b === undefined) {
      b = new Batch();
      this.byTag.set(tag, b);
    }
    return b;
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.pending !== undefined) this.send(this.pending, "");
    if (this.byTag !== undefined) {
      const batches = this.byTag;
      this.byTag = undefined;
      for (const b of batches.values()) this.send(b, undefined);
    }
  };

  private send(b: Batch, tag: string | undefined): void {
    if (b === this.pending) this.pending = undefined;
    else if (tag !== undefined) this.byTag?.delete(tag);
    const { keys, args, resolvers } = encodeBatch("each", b.groups);
    this.call(keys, args).then(
      (reply) => settle(resolvers, reply),
      () => settle(resolvers, undefined),
    );
  }
}

/** The KEYS and ARGV of one rate script call over `groups`, and their resolvers in reply order. */
export function encodeBatch(
  mode: "each" | "all",
  groups: readonly Pick<Group, "spec" | "now" | "flag" | "keys" | "costs" | "resolvers">[],
): { keys: string[]; args: string[]; resolvers: ((o: Outcome | undefined) => void)[] } {
  if (groups.length === 1) {
    const g = groups[0]!;
    return { keys: g.keys, args: [mode, g.spec, g.now, g.flag, String(g.keys.length), ...g.costs], resolvers: g.resolvers };
  }
  const keys: string[] = [];
  const args: string[] = [mode];
  const resolvers: ((o: Outcome | undefined) => void)[] = [];
  for (const g of groups) {
    keys.push(...g.keys);
    args.push(g.spec, g.now, g.flag, String(g.keys.length), ...g.costs);
    resolvers.push(...g.resolvers);
  }
  return { keys, args, resolvers };
}

/** Decodes the script's reply (five fields per operation) into outcomes; undefined for operations it did not decide. */
export function settle(resolvers: ((o: Outcome | undefined) => void)[], reply: unknown): void {
  const fields = typeof reply === "string" && reply.length > 0 ? reply.split(" ") : [];
  for (let i = 0; i < resolvers.length; i++) resolvers[i]!(fields.length < (i + 1) * 5 ? undefined : decodeOutcome(fields, i * 5));
}

/** One operation's answer, starting at field `at`. */
export function decodeOutcome(f: string[], at: number): Outcome {
  const o = new Outcome();
  const remaining = Number(f[at + 1]);
  const resetMs = Number(f[at + 2]);
  if (f[at] === "1") o.allow(remaining, resetMs);
  else o.reject(f[at + 4] as RejectReason, remaining, resetMs, Number(f[at + 3]));
  return o;
}
