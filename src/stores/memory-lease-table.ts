/** Concurrency leases in the memory store. */
import {
  concurrencyAcquire,
  concurrencyEarliestExpiry,
  concurrencyInit,
  concurrencyIsIdle,
  concurrencyPrune,
  concurrencyRelease,
  concurrencyRenew,
  concurrencyWidth,
} from "../algorithms/concurrency.js";
import { msUntil } from "../algorithms/outcome.js";
import { InvalidArgumentError } from "../core/errors.js";
import type { LeaseGrant, LeaseId, LeaseTable } from "./store.js";
import type { MemoryTable } from "./memory-table.js";

/** Most slots per key with lease expiry: each live lease is tracked by id in the key's state. */
export const MAX_TRACKED_LEASES = 4096;

/**
 * Concurrency leases in the memory store. With a TTL each live lease is
 * tracked by id (src/algorithms/concurrency.ts), so a lost lease expires on
 * its own. Without one only the count is kept, with a generation: a fresh
 * number for each life of a key's slot, which is the lease id, so a stale
 * release (after a reset or an eviction) cannot free a newer holder's slot.
 */
export class MemoryLeaseTable implements LeaseTable<true> {
  private readonly counted: boolean;
  private readonly table: MemoryTable;
  private nextId = 1;
  private generation = 0;

  constructor(
    readonly name: string,
    readonly limit: number,
    readonly ttlMs: number,
    tableFor: (width: number, init: (s: Float64Array, o: number) => void, isIdle: (s: Float64Array, o: number, now: number) => boolean) => MemoryTable,
  ) {
    this.counted = ttlMs === Infinity;
    if (!this.counted && limit > MAX_TRACKED_LEASES) {
      throw new InvalidArgumentError("limit", `must be <= ${MAX_TRACKED_LEASES} when leaseTtlMs is set, got ${limit}`);
    }
    this.table = this.counted
      ? tableFor(2, countedInit, (s, off) => s[off] === 0)
      : tableFor(concurrencyWidth(limit), concurrencyInit, concurrencyIsIdle);
  }

  acquire(key: string, now: number): LeaseGrant {
    const t = this.table;
    const off = t.slot(key, now) * t.width;
    if (this.counted) {
      if (t.state[off + 1] === 0) t.state[off + 1] = ++this.generation;
      const held = t.state[off]! < this.limit ? ++t.state[off]! : -1;
      return { held, id: t.state[off + 1]!, retryAfterMs: 0 };
    }
    const id = this.nextId++;
    const held = concurrencyAcquire(t.state, off, now, id, this.ttlMs, this.limit);
    return { held, id, retryAfterMs: held >= 0 ? 0 : msUntil(now, concurrencyEarliestExpiry(t.state, off)) };
  }

  release(key: string, id: LeaseId, now: number): boolean {
    const slot = this.table.find(key);
    if (slot < 0) return false;
    const s = this.table.state;
    const off = slot * this.table.width;
    if (!this.counted) return concurrencyRelease(s, off, now, id as number);
    if (s[off + 1] !== id || !(s[off]! > 0)) return false;
    s[off]!--;
    return true;
  }

  renew(key: string, id: LeaseId, now: number): boolean {
    const slot = this.table.find(key);
    if (slot < 0) return false;
    const off = slot * this.table.width;
    if (this.counted) return this.table.state[off + 1] === id;
    return concurrencyRenew(this.table.state, off, now, id as number, this.ttlMs);
  }

  held(key: string, now: number): number {
    const slot = this.table.find(key);
    if (slot < 0) return 0;
    const off = slot * this.table.width;
    return this.counted ? this.table.state[off]! : concurrencyPrune(this.table.state, off, now);
  }

  delete(key: string): void {
    this.table.delete(key);
  }
}

function countedInit(s: Float64Array, o: number): void {
  s[o] = 0;
  s[o + 1] = 0;
}
