/**
 * A bounded map whose entries expire, least recently used first out: the
 * one LRU-with-TTL of the gateway's caches (credentials, policy decisions).
 */
import type { Clock } from "./clock.js";

/**
 * At most `maxEntries` entries (the least recently used goes first when
 * full), each readable until `ttlMs` after it was set. Expiry is lazy
 * (checked on read, and on the oldest entries when one is added), so there
 * is no timer per entry. Time comes from `clock`. `onDrop` hears of every
 * entry that leaves other than by clear(), so a caller can keep an index.
 */
export class ExpiringLru<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();

  constructor(
    private readonly clock: Clock,
    private maxEntries: number,
    private ttlMs: number,
    private readonly onDrop?: (key: string, value: V) => void,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The value of a live entry (and marks it most recently used), or undefined. */
  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (this.clock.now() >= e.expiresAt) {
      this.delete(key);
      return undefined;
    }
    // Map order is recency order: move to the end.
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.value;
  }

  /** Sets `key` for a full TTL from now, evicting the least recently used entry when full. */
  set(key: string, value: V): void {
    if (this.maxEntries <= 0) return;
    this.delete(key);
    this.sweep(2);
    this.trim(this.maxEntries - 1);
    this.entries.set(key, { value, expiresAt: this.clock.now() + this.ttlMs });
  }

  delete(key: string): boolean {
    const e = this.entries.get(key);
    if (e === undefined) return false;
    this.entries.delete(key);
    this.onDrop?.(key, e.value);
    return true;
  }

  /** New bounds; entries beyond the new size are dropped, oldest first. TTLs already given stay. */
  resize(maxEntries: number, ttlMs: number): void {
    this.maxEntries = maxEntries;
    this.ttlMs = ttlMs;
    this.trim(Math.max(0, maxEntries));
  }

  clear(): void {
    this.entries.clear();
  }

  /** Drops the least recently used entries until at most `n` are left. */
  private trim(n: number): void {
    while (this.entries.size > n) this.delete(this.entries.keys().next().value!);
  }

  /** Drops up to `n` expired entries from the least recently used end, so idle entries do not wait for eviction. */
  private sweep(n: number): void {
    const now = this.clock.now();
    for (const [k, e] of this.entries) {
      if (n-- <= 0 || now < e.expiresAt) return;
      this.delete(k);
    }
  }
}
