/**
 * portcullis/redis: the shared store. Limits, leases and bans that hold
 * across gateways and restarts, with an insurance fallback when Redis fails.
 */
export { RedisStore, type RedisStoreOptions, type RedisClient } from "./stores/redis/redis-store.js";
export type { FailureMode, StoreMode, RedisStoreEvents, HealthCounters } from "./stores/redis/store-health.js";
export { RedisRateLimiter, type RedisLimiterOptions } from "./stores/redis/redis-rate-limiter.js";
export { RedisPenaltyBox, type RedisPenaltyBoxOptions } from "./stores/redis/redis-penalty-box.js";
export { LeasedQuota, type LeasedQuotaOptions, type Grant } from "./stores/redis/leased-quota.js";
export { RedisConcurrencyLimiter, type RedisConcurrencyLimiterOptions, type AsyncLease, type AsyncConcurrencyResult } from "./stores/redis/redis-concurrency-limiter.js";
export { RedisLimiterSet } from "./stores/redis/redis-limiter-set.js";
export { RedisQuotaSource, type RedisQuotaSourceOptions } from "./shaping/redis-quota.js";
