/**
 * A bounded TTL cache of policy lookups, keyed by (identity, destination),
 * with an index by identity so a change to one identity's permissions drops
 * exactly its entries. Map insertion order is the LRU order: a hit re-inserts
 * its entry at the end, and the front is evicted when the cache is full.
 *
 * The generation counter closes a race: a lookup that started before an
 * invalidation may carry the old answer, so it is only stored if no
 * invalidation happened while it ran.
 */
import type { Clock } from "../../core/clock.js";
import { ExpiringLru } from "../../core/expiring-lru.js";
import { integerAtLeast, nonNegative } from "../../core/validate.js";

export interface DecisionCacheOptions {
  readonly clock: Clock;
  /** How long an entry stays usable (ms of the clock's monotonic time). 0 disables caching. */
  readonly ttlMs: number;
  readonly maxEntries: number;
}

interface Entry<V> {
  readonly identity: string;
  readonly value: V;
}

export class DecisionCache<V> {
  private readonly entries: ExpiringLru<Entry<V>>;
  private readonly byIdentity = new Map<string, Set<string>>();
  private readonly ttlMs: number;
  private gen = 0;

  constructor(o: DecisionCacheOptions) {
    this.ttlMs = nonNegative("cacheTtlMs", o.ttlMs);
    const maxEntries = integerAtLeast("cacheMaxEntries", o.maxEntries, 1);
    this.entries = new ExpiringLru(o.clock, maxEntries, this.ttlMs, (key, e) => this.unindex(key, e.identity));
  }

  /** Changes on every invalidation. */
  get generation(): number {
    return this.gen;
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): V | undefined {
    return this.entries.get(key)?.value;
  }

  /** Stores `value` unless an invalidation happened since `generation` was read. */
  set(identity: string, key: string, value: V, generation: number): boolean {
    if (this.ttlMs === 0 || generation !== this.gen) return false;
    this.entries.set(key, { identity, value });
    let keys = this.byIdentity.get(identity);
    if (keys === undefined) this.byIdentity.set(identity, (keys = new Set()));
    keys.add(key);
    return true;
  }

  invalidate(identity: string): void {
    this.gen++;
    const keys = this.byIdentity.get(identity);
    if (keys === undefined) return;
    this.byIdentity.delete(identity);
    for (const k of keys) this.entries.delete(k);
  }

  clear(): void {
    this.gen++;
    this.entries.clear();
    this.byIdentity.clear();
  }

  /** Drops `key` from its identity's index once its entry left the cache (expired, evicted, replaced). */
  private unindex(key: string, identity: string): void {
    const keys = this.byIdentity.get(identity);
    if (keys === undefined) return;
    keys.delete(key);
    if (keys.size === 0) this.byIdentity.delete(identity);
  }
}
