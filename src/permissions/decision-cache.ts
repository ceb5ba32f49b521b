import type { Clock } from "../core/clock.js";
import { integerAtLeast, nonNegative } from "../core/validate.js";

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
export interface DecisionCacheOptions {
  readonly clock: Clock;
  /** How long an entry stays usable (ms of the clock's monotonic time). 0 disables caching. */
  readonly ttlMs: number;
  readonly maxEntries: number;
}

interface Entry<V> {
  readonly identity: string;
  readonly value: V;
  readonly expiresAt: number;
}

/** Entries looked at for expiry per insert: a small constant keeps inserts O(1). */
const SWEEP_PER_INSERT = 2;

export class DecisionCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private readonly byIdentity = new Map<string, Set<string>>();
  private readonly clock: Clock;
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private gen = 0;

  constructor(o: DecisionCacheOptions) {
    this.clock = o.clock;
    this.ttlMs = nonNegative("cacheTtlMs", o.ttlMs);
    this.maxEntries = integerAtLeast("cacheMaxEntries", o.maxEntries, 1);
  }

  /** Changes on every invalidation. */
  get generation(): number {
    return this.gen;
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (this.clock.now() >= e.expiresAt) {
      this.remove(key, e);
      return undefined;
    }
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.value;
  }

  /** Stores `value` unless an invalidation happened since `generation` was read. */
  set(identity: string, key: string, value: V, generation: number): boolean {
    if (this.ttlMs === 0 || generation !== this.gen) return false;
    const now = this.clock.now();
    const old = this.entries.get(key);
    if (old !== undefined) this.remove(key, old);
    this.sweep(now);
    while (this.entries.size >= this.maxEntries) {
      const [k, e] = this.entries.entries().next().value as [string, Entry<V>];
      this.remove(k, e);
    }
    this.entries.set(key, { identity, value, expiresAt: now + this.ttlMs });
    let keys = this.byIdentity.get(identity);
    if (keys === undefined) this.byIdentity.set(identity, (keys = new Set()));
    keys.add(key);
    return true;
  }

  invalidate(identity: string): void {
    this.gen++;
    const keys = this.byIdentity.get(identity);
    if (keys === undefined) return;
    for (const k of keys) this.entries.delete(k);
    this.byIdentity.delete(identity);
  }

  clear(): void {
    this.gen++;
    this.entries.clear();
    this.byIdentity.clear();
  }

  private sweep(now: number): void {
    let i = 0;
    for (const [k, e] of this.entries) {
      if (i++ >= SWEEP_PER_INSERT || now < e.expiresAt) return;
      this.remove(k, e);
    }
  }

  private remove(key: string, e: Entry<V>): void {
    this.entries.delete(key);
    const keys = this.byIdentity.get(e.identity);
    if (keys === undefined) return;
    keys.delete(key);
    if (keys.size === 0) this.byIdentity.delete(e.identity);
  }
}
