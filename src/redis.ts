/**
 * portcullis/redis: the shared store. Limits, leases and bans that hold
 * across gateways and restarts, with an insurance fallback when Redis fails.
 * The limiters are the library's own (RateLimiter, LimiterSet,
 * ConcurrencyLimiter, PenaltyBox) given a RedisStore; the Redis* names
 * below are those limiters with the RedisStore made explicit.
 */
export { RedisStore, type RedisStoreOptions, type RedisClient } from "./stores/redis/redis-store.js";
export type { FailureMode, StoreMode, RedisStoreEvents, HealthCounters } from "./stores/store-health.js";
export {
  RedisRateLimiter,
  type RedisLimiterOptions,
  RedisLimiterSet,
  RedisConcurrencyLimiter,
  type RedisConcurrencyLimiterOptions,
  type AsyncLease,
  type AsyncConcurrencyResult,
  RedisPenaltyBox,
  type RedisPenaltyBoxOptions,
} from "./limiter/redis-limiters.js";
export { LeasedQuota, type LeasedQuotaOptions, type Grant } from "./stores/redis/leased-quota.js";
export { RedisQuotaSource, type RedisQuotaSourceOptions } from "./features/bandwidth/redis-quota.js";
