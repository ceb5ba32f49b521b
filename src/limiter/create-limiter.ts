import { MemoryStore } from "../stores/memory-store.js";
import { type MemoryLimiterOptions, RateLimiter } from "./rate-limiter.js";

/**
 * Creates a rate limit on the memory store. Without a `store` it gets a
 * store of its own; without a `name`, the store generates one.
 */
export function createLimiter(options: MemoryLimiterOptions): RateLimiter {
  const store = options.store ?? new MemoryStore();
  return new RateLimiter({ ...options, store }, options.name ?? store.generateName(options.algorithm));
}
