/** LimiterSet: several limits checked as one, all of them or none charged. */
import type { Outcome } from "../algorithms/outcome.js";
import { InvalidArgumentError } from "../core/errors.js";
import { cost as validCost } from "../core/validate.js";
import { FAILED, type Failed, type RateOp, type Reply, type Store } from "../stores/store.js";
import type { Decision } from "./decision.js";
import type { RateLimiter } from "./rate-limiter.js";
import { refuse, then } from "./reply.js";

export interface CompositeDecision {
  /** True only when every enforced limit allowed. */
  readonly allowed: boolean;
  /** Longest wait among the rejecting limits (0 when allowed). */
  readonly retryAfterMs: number;
  /** Name of the first enforced limit that rejected. */
  readonly rejectedBy: string | undefined;
  /** One decision per limit, in the set's order (limits after a rejection are not checked). */
  readonly decisions: readonly Decision[];
}

/**
 * Several limits checked as one (per-IP AND per-user AND global), on any
 * store. A check either consumes from every limit or from none: the store
 * applies the limits in order as one atomic step (`Store.rateAll`) and
 * stops at the first rejection of a limit that is not in shadow mode. On
 * Redis Cluster, keys in different slots cannot share a script: the Redis
 * store then peeks every limit and charges them only if all would allow,
 * and refunds the others when one rejects the charge (see docs/redis.md).
 */
export class LimiterSet<S extends boolean = true> {
  readonly sync: S;
  private readonly store: Store<S>;

  constructor(readonly limiters: readonly RateLimiter<S>[]) {
    if (limiters.length === 0) throw new InvalidArgumentError("limiters", "must name at least one limit");
    this.store = limiters[0]!.store;
    this.sync = this.store.sync;
    if (!this.sync && limiters.some((l) => l.store !== this.store)) throw new InvalidArgumentError("limiters", "must all use the same store");
  }

  /** `keys[i]` is the key for `limiters[i]` (for example [ip, user, "global"]). */
  check(keys: readonly string[], cost = 1): Reply<S, CompositeDecision> {
    try {
      if (keys.length !== this.limiters.length) {
        throw new InvalidArgumentError("keys", `expected ${this.limiters.length} keys, got ${keys.length}`);
      }
      if (cost !== 1) validCost(cost);
      // Validate every key before charging any limit: a throw halfway would leave the first ones charged.
      for (let i = 0; i < keys.length; i++) {
        if (typeof keys[i] !== "string") throw new InvalidArgumentError(`keys[${i}]`, "must be a string");
      }
    } catch (err) {
      return refuse(this.sync, err);
    }
    // Waiters of a queue that fit now go first (sync stores); a key whose
    // waiters may not be passed rejects before anything is charged.
    for (let i = 0; i < keys.length; i++) this.limiters[i]!.waitQueue?.drain(keys[i]!);
    const q = this.limiters.findIndex((l, i) => l.waitQueue !== undefined && l.waitQueue.blocks(keys[i]!, cost));
    if (q >= 0) return this.rejectQueued(keys, cost, q);
    const ops: RateOp<S>[] = this.limiters.map((l, i) => ({ table: l.table, key: keys[i]!, cost, now: l.now(), shadow: l.shadow }));
    return then(this.sync, this.store.rateAll(ops), (outs: Outcome[] | Failed) => {
      if (outs === FAILED) return this.fallback(keys, cost);
      // Newest first, a newcomer with waiters ahead passes when the window has room; if not, its Retry-After is the queue's.
      return this.compose(outs.map((o, i) => this.limiters[i]!.decide(this.behindQueue(i, keys[i]!, cost, o), keys[i]!, cost)));
    });
  }

  private behindQueue(i: number, key: string, cost: number, o: Outcome): Outcome {
    const queue = this.limiters[i]!.waitQueue;
    return queue === undefined ? o : queue.answer(key, cost, o)!;
  }

  private compose(decisions: Decision[]): CompositeDecision {
    const i = decisions.findIndex((d) => !d.allowed);
    if (i < 0) return { allowed: true, retryAfterMs: 0, rejectedBy: undefined, decisions };
    return { allowed: false, retryAfterMs: decisions[i]!.retryAfterMs, rejectedBy: this.limiters[i]!.name, decisions: decisions.slice(0, i + 1) };
  }

  /** Limit `q`'s queue answers alone: the limits before it are peeked, nothing is charged. */
  private rejectQueued(keys: readonly string[], cost: number, q: number): Reply<S, CompositeDecision> {
    const l = this.limiters[q]!;
    const last = l.decide(l.waitQueue!.answer(keys[q]!, cost, undefined), keys[q]!, cost);
    const before = this.limiters.slice(0, q).map((x, i) => x.peek(keys[i]!, cost));
    if (this.sync) return this.compose([...(before as Decision[]), last]) as Reply<S, CompositeDecision>;
    return Promise.all(before).then((b) => this.compose([...b, last])) as Reply<S, CompositeDecision>;
  }

  /** The store did not answer: its failure mode decides, with the same all-or-nothing rule. */
  private fallback(keys: readonly string[], cost: number): CompositeDecision {
    const f = this.store.failure;
    if (f?.failureMode === "insurance") {
      f.countFallback();
      const local = this.limiters.map((l) => l.insurance());
      const c = new LimiterSet(local).check(keys, cost);
      // Report the limit by its own name, not its insurance's.
      const i = local.findIndex((l) => l.name === c.rejectedBy);
      return i < 0 ? c : { ...c, rejectedBy: this.limiters[i]!.name };
    }
    return this.compose(this.limiters.map((l, i) => l.decide(FAILED, keys[i]!, cost)));
  }
}
