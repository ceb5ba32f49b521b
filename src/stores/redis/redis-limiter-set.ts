import { InvalidArgumentError } from "../../core/errors.js";
import { cost as validCost } from "../../core/validate.js";
import type { Decision } from "../../limiter/decision.js";
import { type CompositeDecision, LimiterSet } from "../../limiter/limiter-set.js";
import { slotOf } from "./keys.js";
import type { RateOp } from "./redis-store.js";
import type { RedisRateLimiter } from "./redis-rate-limiter.js";

/**
 * Several Redis limits checked as one (per-IP AND per-user AND global): one
 * script call decides them in order and either charges every limit or, at
 * the first rejection, none. On Cluster, keys in different slots cannot
 * share a script: the set then peeks every limit and charges them only if
 * all would allow; when a concurrent check took the room between the two
 * steps and one limit rejects the charge, the others are refunded. A
 * rejected request is then not charged in the end, but for the moment
 * between charge and refund the other limits read fuller than they are.
 */
export class RedisLimiterSet {
  constructor(readonly limiters: readonly RedisRateLimiter[]) {
    if (limiters.length === 0) throw new InvalidArgumentError("limiters", "must name at least one limit");
    const store = limiters[0]!.store;
    if (limiters.some((l) => l.store !== store)) throw new InvalidArgumentError("limiters", "must all use the same RedisStore");
  }

  /** `keys[i]` is the key for `limiters[i]`. */
  async check(keys: readonly string[], cost = 1): Promise<CompositeDecision> {
    if (keys.length !== this.limiters.length) {
      throw new InvalidArgumentError("keys", `expected ${this.limiters.length} keys, got ${keys.length}`);
    }
    if (cost !== 1) validCost(cost);
    keys.forEach((k, i) => {
      if (typeof k !== "string") throw new InvalidArgumentError(`keys[${i}]`, "must be a string");
    });
    // A key whose waiters in this process's queue may not be passed rejects before anything is charged.
    const q = this.limiters.findIndex((l, i) => l.queueBlocks(keys[i]!, cost));
    if (q >= 0) return this.rejectQueued(keys, cost, q);
    const store = this.limiters[0]!.store;
    const ops = this.ops(keys, cost, (l) => (l.shadow ? "s" : "0"));
    const first = store.cluster ? slotOf(ops[0]!.key) : 0;
    const sameSlot = !store.cluster || ops.every((o) => slotOf(o.key) === first);
    if (!sameSlot) return this.peekThenCharge(keys, cost);
    const outs = await store.rateAll(ops);
    if (outs === undefined) return this.fallback(keys, cost);
    // Newest first, a newcomer with waiters ahead passes when the window has room; if not, its Retry-After is the queue's.
    return this.compose(outs.map((o, i) => this.limiters[i]!.decide(this.limiters[i]!.behindQueue(keys[i]!, cost, o)!)));
  }

  private ops(keys: readonly string[], cost: number, flag: (l: RedisRateLimiter) => string): RateOp[] {
    return this.limiters.map((l, i) => ({ key: l.redisKey(keys[i]!), spec: l.scriptSpec, cost, now: l.nowArg(), flag: flag(l) }));
  }

  private compose(decisions: Decision[]): CompositeDecision {
    const i = decisions.findIndex((d) => !d.allowed);
    if (i < 0) return { allowed: true, retryAfterMs: 0, rejectedBy: undefined, decisions };
    return { allowed: false, retryAfterMs: decisions[i]!.retryAfterMs, rejectedBy: this.limiters[i]!.name, decisions: decisions.slice(0, i + 1) };
  }

  private async rejectQueued(keys: readonly string[], cost: number, q: number): Promise<CompositeDecision> {
    const before = await Promise.all(this.limiters.slice(0, q).map((l, i) => l.peek(keys[i]!, cost)));
    const l = this.limiters[q]!;
    return this.compose([...before, l.decide(l.behindQueue(keys[q]!, cost, undefined)!)]);
  }

  private async peekThenCharge(keys: readonly string[], cost: number): Promise<CompositeDecision> {
    const peeks = await Promise.all(this.limiters.map((l, i) => l.peek(keys[i]!, cost)));
    const c = this.compose(peeks);
    if (!c.allowed) return c;
    const charged = await Promise.all(this.limiters.map((l, i) => l.check(keys[i]!, cost)));
    const out = this.compose(charged);
    if (!out.allowed) {
      // Give back what the limits that allowed took (a shadowed rejection took nothing).
      await Promise.all(charged.map((d, i) => (d.allowed && !d.shadowed ? this.limiters[i]!.refund(keys[i]!, cost) : undefined)));
    }
    return out;
  }

  /** Redis did not answer: the store's failure mode decides, with the same all-or-nothing rule. */
  private fallback(keys: readonly string[], cost: number): CompositeDecision {
    const first = this.limiters[0]!;
    if (first.store.failureMode === "insurance") {
      first.store.countFallback();
      const local = this.limiters.map((l) => l.insurance());
      const c = new LimiterSet(local).check(keys, cost);
      // Report the limit by its own name, not its insurance's.
      const i = local.findIndex((l) => l.name === c.rejectedBy);
      return i < 0 ? c : { ...c, rejectedBy: this.limiters[i]!.name };
    }
    return this.compose(this.limiters.map((l, i) => l.decide(l.fallback(keys[i]!, cost, false))));
  }
}
