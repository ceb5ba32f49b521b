/** A rate limit's state in Redis. */
import type { LimitSpec } from "../../algorithms/limit-spec.js";
import type { Outcome } from "../../algorithms/outcome.js";
import type { Failed, RateTable } from "../store.js";
import { stateKey } from "./key-names.js";
import type { RedisCalls } from "./redis-calls.js";

/** What the scripts receive as `now`: '' for Redis TIME (STORE_TIME), else the limit's clock reading. */
export function nowArg(now: number): string {
  return Number.isNaN(now) ? "" : String(now);
}

/**
 * A rate limit's state in Redis: the rate script (scripts/rate.ts) runs the
 * algorithm atomically on `<prefix>{<name>:<key>}`. Checks of one tick are
 * batched into one script call by the store.
 */
export class RedisRateTable implements RateTable<false> {
  /** The state key up to the subject: `<prefix>{<name>:` (see key-names.ts). */
  private readonly keyHead: string;

  constructor(
    private readonly store: RedisCalls,
    readonly name: string,
    readonly spec: LimitSpec,
    /** @internal The rate script's parameter string for this limit. */
    readonly scriptSpec: string,
  ) {
    this.keyHead = stateKey(store.prefix, name, "").slice(0, -1);
  }

  consume(key: string, cost: number, now: number): Promise<Outcome | Failed> {
    // The hot path: one promise from the batcher (no async wrapper).
    return this.store.rate(this.keyHead + key + "}", this.scriptSpec, cost, Number.isNaN(now) ? "" : String(now), "0");
  }

  peek(key: string, cost: number, now: number): Promise<Outcome | Failed> {
    return this.store.rate(this.redisKey(key), this.scriptSpec, cost, nowArg(now), "1");
  }

  /** Gives back `cost` charged moments ago on `key` (a composite check rejected by another limit). */
  async refund(key: string, cost: number, now: number): Promise<void> {
    await this.store.rate(this.redisKey(key), this.scriptSpec, cost, nowArg(now), "r");
  }

  async delete(key: string): Promise<void> {
    await this.store.command((c) => c.del(this.redisKey(key)));
  }

  /** The Redis key holding the state of `key`. */
  redisKey(key: string): string {
    return stateKey(this.store.prefix, this.name, key);
  }
}
