/** createLimiter: a rate limit from its options, on the store given or a memory store of its own. */
import { type RateLimiterOptions, RateLimiter } from "./rate-limiter.js";

/**
 * Creates a rate limit. Without a `store` it gets a memory store of its
 * own; without a `name`, the store generates one. On a sync store (memory)
 * it answers at once, on an async store (Redis, message) with promises.
 */
export function createLimiter<S extends boolean = true>(options: RateLimiterOptions<S>): RateLimiter<S> {
  return new RateLimiter(options);
}
