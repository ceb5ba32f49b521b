/** The bandwidth quota source backed by the process holding the shared state (the message store). */
import type { RateSpec } from "../../algorithms/byte-bucket.js";
import type { QuotaSource } from "./quota.js";

/** What the quota needs of a store whose state lives in another process (the message store fits). */
export interface QuotaHost {
  quota(key: string, bytes: number, bytesPerSecond: number, burst: number): Promise<number>;
}

/** Whether `store` can hold byte quotas for its peers (a MessageStore can). */
export function isQuotaHost(store: unknown): store is QuotaHost {
  return typeof store === "object" && store !== null && typeof (store as { quota?: unknown }).quota === "function";
}

/**
 * Backs the bandwidth registry's QuotaSource with the process that holds the
 * shared state (the primary of `workers = N`, through the message store):
 * every worker draws a key's bytes from one bucket there, in leased slices,
 * as gateways on one Redis do through RedisQuotaSource. Spending from the
 * local lease is synchronous; only a refill is a message (batched with the
 * other operations of its tick). A host that does not answer grants
 * nothing: shaped connections wait (fail closed) and the lease retries.
 */
export class MessageQuotaSource implements QuotaSource {
  constructor(private readonly host: QuotaHost) {}

  take(key: string, bytes: number, spec: RateSpec): Promise<number> {
    return this.host.quota(key, bytes, spec.bytesPerSecond, spec.burst ?? spec.bytesPerSecond);
  }
}
