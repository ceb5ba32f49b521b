import type { Clock } from "../../core/clock.js";

/**
 * A bounded map whose entries expire: at most `maxEntries` (the least
 * recently used goes first when full), each readable until `ttlMs` after it
 * was set. Expiry is lazy (checked on read, and on the oldest entries when
 * one is added), so there is no timer per entry. Time comes from `clock`.
 */
export class ExpiringLru<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();

  constructor(
    private readonly clock: Clock,
    private maxEntries: number,
    private ttlMs: number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The value of a live entry (and marks it most recently used), or undefined. */
  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (this.clock.now() >= e.expiresAt) {
      this.entries.delete(key);
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
    this.entries.delete(key);
    this.sweep(2);
    while (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { value, expiresAt: this.clock.now() + this.ttlMs });
  }

  delete(key: string): boolean {
    return this.entries.delete(key);
  }

  /** New bounds; entries beyond the new size are dropped, oldest first. TTLs already given stay. */
  resize(maxEntries: number, ttlMs: number): void {
    this.maxEntries = maxEntries;
    this.ttlMs = ttlMs;
    while (this.entries.size > Math.max(0, maxEntries)) this.entries.delete(this.entries.keys().next().value!);
  }

  clear(): void {
    this.entries.clear();
  }

  /** Drops up to `n` expired entries from the least recently used end, so idle entries do not wait for eviction. */
  private sweep(n: number): void {
    const now = this.clock.now();
    for (const [k, e] of this.entries) {
      if (n-- <= 0 || now < e.expiresAt) return;
      this.entries.delete(k);
    }
  }
}
