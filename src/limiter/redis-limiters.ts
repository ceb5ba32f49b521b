/** The Redis limiter names of earlier versions, kept as thin aliases over the one limiter family. */
import type { RedisPenaltyTable } from "../stores/redis/redis-penalty-table.js";
import type { RedisRateTable } from "../stores/redis/redis-rate-table.js";
import type { RedisStore } from "../stores/redis/redis-store.js";
import { type ConcurrencyLimiterOptions, type ConcurrencyResult, ConcurrencyLimiter, type Lease } from "./concurrency-limiter.js";
import { LimiterSet } from "./limiter-set.js";
import { type PenaltyBoxOptions, PenaltyBox } from "./penalty-box.js";
import { type RateLimiterOptions, RateLimiter } from "./rate-limiter.js";

/**
 * The names of the Redis limiters of earlier versions: the one limiter
 * family with a RedisStore made explicit (and its Redis-only extras: the
 * state key of a subject, a refund, the shared ban list's lifecycle).
 * Nothing here decides anything.
 */
export type RedisLimiterOptions = RateLimiterOptions<false> & { store: RedisStore };

export class RedisRateLimiter extends RateLimiter<false> {
  declare readonly store: RedisStore;
  constructor(o: RedisLimiterOptions) {
    super(o);
  }

  /** @internal The Redis key holding the state of `key`. */
  redisKey(key: string): string {
    return (this.table as RedisRateTable).redisKey(key);
  }

  /** @internal Gives back `cost` charged moments ago on `key`. */
  refund(key: string, cost: number): Promise<void> {
    return (this.table as RedisRateTable).refund(key, cost, this.now());
  }
}

export class RedisLimiterSet extends LimiterSet<false> {
  constructor(limiters: readonly RateLimiter<false>[]) {
    super(limiters);
  }
}

export type RedisConcurrencyLimiterOptions = ConcurrencyLimiterOptions<false> & { store: RedisStore };
export type AsyncLease = Lease<false>;
export type AsyncConcurrencyResult = ConcurrencyResult<false>;

export class RedisConcurrencyLimiter extends ConcurrencyLimiter<false> {
  constructor(o: RedisConcurrencyLimiterOptions) {
    super(o);
  }
}

export type RedisPenaltyBoxOptions = PenaltyBoxOptions<false> & {
  store: RedisStore;
  /** Most keys of the local box used while Redis is unavailable, and most forgets waiting to be written back (default 65,536). */
  insuranceMaxKeys?: number;
};

export class RedisPenaltyBox extends PenaltyBox<false> {
  constructor(o: RedisPenaltyBoxOptions) {
    super({ ...o, maxKeys: o.insuranceMaxKeys ?? o.maxKeys });
  }

  private get shared(): RedisPenaltyTable {
    return this.table as RedisPenaltyTable;
  }

  /** Subscribes to the box's ban events and loads the live bans (false if Redis did not answer in time). */
  override start(timeoutMs?: number): Promise<boolean> {
    return this.shared.start(timeoutMs);
  }

  /** Writes back what was recorded locally while Redis was unavailable (see RedisPenaltyTable.writeBack). */
  writeBack(): Promise<boolean> {
    return this.shared.writeBack();
  }

  /** Bans and forgets recorded locally while Redis was unavailable and not written back yet (O(n)). */
  get pendingWriteBack(): number {
    return this.shared.pendingWriteBack;
  }

  /** The box's reading of store time. */
  storeNow(): number {
    return this.shared.storeNow();
  }

  /** Unsubscribes and disconnects the subscriber (the store stays open). */
  override close(): Promise<void> {
    return this.shared.close();
  }
}
