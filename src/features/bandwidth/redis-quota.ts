/** The bandwidth quota source backed by the Redis store's leased quotas. */
import { LeasedQuota } from "../../stores/redis/leased-quota.js";
import type { RedisStore } from "../../stores/redis/redis-store.js";
import type { RateSpec } from "../../algorithms/byte-bucket.js";
import type { QuotaSource } from "./quota.js";

export interface RedisQuotaSourceOptions {
  store: RedisStore;
  /** Time's worth of the rate one gateway reserves from Redis at once (default 100 ms): the lease slice. */
  sliceMs?: number;
  /** Distinct rates (per-identity default plus overrides) kept at once (default 256). */
  maxRates?: number;
}

/** Keys go inside a Redis hash tag, so braces (and the escape itself) are escaped. */
const escapeKey = (k: string): string => k.replace(/[{}%]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);

/**
 * Backs the bandwidth registry's QuotaSource with the Redis store's leased
 * quotas, so every gateway on one Redis draws a key's bytes from one bucket.
 * A LeasedQuota has one rate, so there is one per distinct rate (the name
 * says the rate: gateways with the same configuration meet on the same
 * Redis keys, and a reload that changes a key's rate moves it to the
 * bucket of its new rate). Spending from the local lease is synchronous;
 * only a refill waits on Redis.
 */
export class RedisQuotaSource implements QuotaSource {
  private readonly quotas = new Map<string, LeasedQuota>();
  private readonly maxRates: number;

  constructor(private readonly o: RedisQuotaSourceOptions) {
    this.maxRates = o.maxRates ?? 256;
  }

  take(key: string, bytes: number, spec: RateSpec): number | Promise<number> {
    const q = this.quota(spec);
    const k = escapeKey(key);
    const now = q.trySpend(k, bytes);
    if (now > 0) return now;
    return q.take(k, bytes).then((g) => g.granted);
  }

  /** Returns every unspent lease to Redis. */
  async dispose(): Promise<void> {
    const qs = [...this.quotas.values()];
    this.quotas.clear();
    await Promise.all(qs.map((q) => q.dispose()));
  }

  private quota(spec: RateSpec): LeasedQuota {
    const burst = spec.burst ?? spec.bytesPerSecond;
    const name = `bw:${spec.bytesPerSecond}:${burst}`;
    let q = this.quotas.get(name);
    if (q === undefined) {
      if (this.quotas.size >= this.maxRates) {
        const [oldName, old] = this.quotas.entries().next().value as [string, LeasedQuota];
        this.quotas.delete(oldName);
        void old.dispose();
      }
      q = new LeasedQuota({ store: this.o.store, name, rate: spec.bytesPerSecond, burst, sliceMs: this.o.sliceMs ?? 100 });
      this.quotas.set(name, q);
    }
    return q;
  }
}
