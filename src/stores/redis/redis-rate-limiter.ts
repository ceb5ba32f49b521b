import { Outcome } from "../../algorithms/outcome.js";
import { type Clock, systemClock } from "../../core/clock.js";
import { InvalidArgumentError } from "../../core/errors.js";
import { cost as validCost, positive } from "../../core/validate.js";
import { Decision } from "../../limiter/decision.js";
import { type LimitSpec, type RateLimitOptions, limitSpec, nearLimitShare } from "../../limiter/limit-spec.js";
import { RateLimiter } from "../../limiter/rate-limiter.js";
import type { AcquireOptions, AsyncLimiter } from "../../limiter/types.js";
import { AsyncWindowQueue } from "./async-window-queue.js";
import { stateKey, validName } from "./keys.js";
import { insuranceOptions, scriptSpec } from "./limit-script-spec.js";
import type { RedisStore } from "./redis-store.js";

export type RedisLimiterOptions = RateLimitOptions & {
  store: RedisStore;
  /** Unique among the limits sharing the Redis prefix (default: a generated name, which is only unique per process). */
  name?: string;
  /**
   * A clock to use instead of Redis TIME (its `now()` is sent with every
   * call). Leave unset in production: Redis TIME keeps skewed gateways in agreement.
   */
  clock?: Clock;
  shadow?: boolean;
  /** Share of the limit at or below which `nearLimit` is set (default 0.2). */
  nearLimitRatio?: number;
  /** Shortest key lifetime in ms (default 1,000 with Redis TIME, 600,000 with an injected clock). */
  keyTtlFloorMs?: number;
};

/**
 * A rate limit on the Redis store, with the memory limiter's semantics
 * (same algorithms, Decision, shadow mode, nearLimit, fixed-window queue).
 * Checks of one tick are batched into one script call by the store. When
 * Redis is unavailable, decisions come from the store's failure mode; a
 * check never rejects for a Redis reason.
 */
export class RedisRateLimiter implements AsyncLimiter {
  readonly sync = false as const;
  readonly name: string;
  readonly algorithm: string;
  readonly limit: number;
  readonly shadow: boolean;
  readonly spec: LimitSpec;
  readonly store: RedisStore;
  /** @internal The rate script's parameter string for this limit. */
  readonly scriptSpec: string;
  private readonly clock: Clock | undefined;
  private readonly nearThreshold: number;
  private readonly queue: AsyncWindowQueue | undefined;
  private insuranceLimiter: RateLimiter | undefined;
  /** The state key up to the subject: `<prefix>{<name>:` (see keys.ts). */
  private readonly keyHead: string;
  private lastNow = -Infinity;

  constructor(o: RedisLimiterOptions) {
    this.spec = limitSpec(o);
    this.store = o.store;
    this.name = validName(o.name ?? o.store.generateName(this.spec.kind));
    this.algorithm = this.spec.kind;
    this.limit = this.spec.algorithm.limit(this.spec.params as never);
    this.shadow = o.shadow ?? false;
    this.nearThreshold = this.limit * nearLimitShare(o.nearLimitRatio);
    this.clock = o.clock;
    const floor = positive("keyTtlFloorMs", o.keyTtlFloorMs ?? (o.clock === undefined ? 1000 : 600_000));
    this.scriptSpec = scriptSpec(this.spec, Math.ceil(floor));
    this.keyHead = stateKey(this.store.prefix, this.name, "").slice(0, -1);
    if (this.spec.kind === "fixed_window" && this.spec.queue) {
      this.queue = new AsyncWindowQueue(this.spec.queue, this.spec.params, this.clock ?? systemClock, {
        now: () => this.limitNow(),
        consume: (key, c) => this.outcome(key, c, "0"),
        peek: (key, c) => this.outcome(key, c, "1"),
      });
    }
  }

  check(key: string, cost = 1): Promise<Decision> {
    try {
      this.validate(key, cost);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.queue !== undefined && this.queue.hasWaiters(key)) return this.queue.behind(key, cost).then((o) => this.decide(o));
    // The hot path: one promise from the batcher, one continuation (no async wrapper).
    return this.store
      .rate(this.keyHead + key + "}", this.scriptSpec, cost, this.nowArg(), this.shadow ? "s" : "0")
      .then((o) => this.decide(o ?? this.fallback(key, cost, false)));
  }

  async peek(key: string, cost = 1): Promise<Decision> {
    this.validate(key, cost);
    // Waiters stand between this key and its free permits: answer as check would.
    if (this.queue !== undefined && this.queue.hasWaiters(key)) return this.decide(await this.queue.peekBehind(key, cost));
    return this.decide(await this.outcome(key, cost, "1"));
  }

  async reset(key: string): Promise<void> {
    if (typeof key !== "string") throw new InvalidArgumentError("key", "must be a string");
    this.insuranceLimiter?.reset(key);
    await this.store.command((c) => c.del(this.redisKey(key)));
  }

  async acquire(key: string, cost = 1, options: AcquireOptions = {}): Promise<Decision> {
    this.validate(key, cost);
    // A shadowed limit only reports: it never makes a caller wait.
    if (this.queue === undefined || this.shadow) return this.check(key, cost);
    return this.decide(await this.queue.acquire(key, cost, options.signal));
  }

  dispose(): void {
    this.queue?.dispose();
  }

  /** @internal The Redis key holding the state of `key`. */
  redisKey(key: string): string {
    return stateKey(this.store.prefix, this.name, key);
  }

  /** @internal What the script receives as `now`: the injected clock (clamped), or '' for Redis TIME. */
  nowArg(): string {
    return this.clock === undefined ? "" : String(this.limitNow());
  }

  /** The limit's time: the injected clock clamped so it never goes back, or the local clock. */
  private limitNow(): number {
    if (this.clock === undefined) return systemClock.now();
    const t = this.clock.now();
    if (t > this.lastNow) this.lastNow = t;
    return this.lastNow;
  }

  /** @internal Runs one operation on Redis, or on the failure mode when Redis does not answer. */
  async outcome(key: string, cost: number, flag: "0" | "1" | "s"): Promise<Outcome> {
    const o = await this.store.rate(this.redisKey(key), this.scriptSpec, cost, this.nowArg(), flag);
    return o ?? this.fallback(key, cost, flag === "1");
  }

  /** @internal Gives back `cost` charged moments ago on `key` (a composite check rejected by another limit). */
  async refund(key: string, cost: number): Promise<void> {
    await this.store.rate(this.redisKey(key), this.scriptSpec, cost, this.nowArg(), "r");
  }

  /** @internal True when this process's queue of `key` answers a call of `cost` without asking Redis (it may not pass the waiters). */
  queueBlocks(key: string, cost: number): boolean {
    return this.queue !== undefined && this.queue.blocks(key, cost);
  }

  /** @internal The answer for a call on `key` given the window's own answer `free` (undefined: not asked), as the queue sees it. */
  behindQueue(key: string, cost: number, free: Outcome | undefined): Outcome | undefined {
    return this.queue === undefined ? free : this.queue.answer(key, cost, free);
  }

  /** @internal True when the queue has no Redis call in flight (tests wait on it). */
  queueIdle(): boolean {
    return this.queue === undefined || this.queue.idle;
  }

  /** @internal The local limit answering while Redis is unavailable (failure mode "insurance"). */
  insurance(): RateLimiter {
    this.insuranceLimiter ??= new RateLimiter(
      { ...insuranceOptions(this.spec, this.store.expectedInstances), store: this.store.insurance, clock: this.clock ?? systemClock },
      // Named per algorithm: two limits sharing a name must not collide in the local store.
      `${this.name}:${this.spec.kind}`,
    );
    return this.insuranceLimiter;
  }

  /** @internal The failure mode's answer: the insurance limit, allow (open) or reject (closed). */
  fallback(key: string, cost: number, peek: boolean): Outcome {
    this.store.countFallback();
    switch (this.store.failureMode) {
      case "insurance": {
        const ins = this.insurance();
        const d = peek ? ins.peek(key, cost) : ins.check(key, cost);
        return toOutcome(d);
      }
      case "open":
        return toOutcome(new Decision(true, this.limit, this.limit, 0, 0, undefined, false, false));
      case "closed": {
        const wait = this.store.probeIntervalMs;
        return toOutcome(new Decision(false, 0, this.limit, wait, wait, "store_unavailable", true, false));
      }
    }
  }

  /** @internal Wraps an outcome the way the memory limiter does (shadow mode, nearLimit). */
  decide(o: Outcome): Decision {
    if (!o.allowed && this.shadow) {
      return new Decision(true, o.remaining, this.limit, o.resetMs, 0, o.reason, o.remaining <= this.nearThreshold, true);
    }
    return new Decision(o.allowed, o.remaining, this.limit, o.resetMs, o.retryAfterMs, o.reason, o.remaining <= this.nearThreshold, false);
  }

  private validate(key: string, cost: number): void {
    if (typeof key !== "string") throw new InvalidArgumentError("key", "must be a string");
    if (cost !== 1) validCost(cost);
  }
}

function toOutcome(d: Decision): Outcome {
  const o = new Outcome();
  if (d.allowed) o.allow(d.remaining, d.resetMs);
  else o.reject(d.reason ?? "rate_limited", d.remaining, d.resetMs, d.retryAfterMs);
  return o;
}
