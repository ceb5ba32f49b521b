import { msUntil } from "../algorithms/outcome.js";
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
import { type Clock, systemClock } from "../core/clock.js";
import { InvalidArgumentError } from "../core/errors.js";
import { integerAtLeast, positive } from "../core/validate.js";
import { MemoryStore } from "../stores/memory-store.js";
import type { MemoryTable } from "../stores/memory-table.js";
import { Decision } from "./decision.js";

export interface ConcurrencyLimiterOptions {
  name?: string;
  /** Most leases held at once per key. */
  limit: number;
  /** A lease not renewed or released within this time frees its slot (default: never). */
  leaseTtlMs?: number;
  store?: MemoryStore;
  clock?: Clock;
  shadow?: boolean;
}

/** A held slot. `release()` is idempotent; `renew()` pushes the TTL back. */
export interface Lease {
  readonly key: string;
  readonly id: number;
  release(): void;
  renew(): boolean;
}

export interface ConcurrencyResult {
  readonly decision: Decision;
  /** Present when allowed (also in shadow mode, so the slot count stays true). */
  readonly lease: Lease | undefined;
}

/** Most slots per key with lease expiry: each live lease is tracked by id in the key's state. */
export const MAX_TRACKED_LEASES = 4096;

/**
 * Caps concurrent holders per key (connections per IP, in-flight requests per
 * user). Leases with a TTL are tracked one by one so that a lost lease
 * expires on its own; without a TTL only the count is kept.
 */
export class ConcurrencyLimiter {
  readonly name: string;
  readonly limit: number;
  readonly algorithm = "concurrency";
  readonly shadow: boolean;
  private readonly ttl: number;
  private readonly table: MemoryTable;
  private readonly clock: Clock;
  private nextId = 1;
  /** Counted mode: a fresh number for each life of a key's slot (see `lease`). */
  private generation = 0;
  private lastNow = -Infinity;

  constructor(o: ConcurrencyLimiterOptions) {
    this.limit = integerAtLeast("limit", o.limit, 1);
    this.ttl = o.leaseTtlMs === undefined ? Infinity : positive("leaseTtlMs", o.leaseTtlMs);
    this.shadow = o.shadow ?? false;
    this.clock = o.clock ?? systemClock;
    const store = o.store ?? new MemoryStore();
    this.name = o.name ?? store.generateName("concurrency");
    const counted = this.ttl === Infinity;
    if (!counted && this.limit > MAX_TRACKED_LEASES) {
      throw new InvalidArgumentError("limit", `must be <= ${MAX_TRACKED_LEASES} when leaseTtlMs is set, got ${this.limit}`);
    }
    // Counted mode keeps [count, generation]: the generation tells a lease
    // whether the slot it was taken from still exists (not reset or evicted
    // since), so a stale release cannot free a newer holder's slot.
    this.table = store.table(this.name, {
      width: counted ? 2 : concurrencyWidth(this.limit),
      init: counted ? countedInit : concurrencyInit,
      isIdle: counted ? (s, off) => s[off] === 0 : concurrencyIsIdle,
    });
  }

  tryAcquire(key: string): ConcurrencyResult {
    if (typeof key !== "string") throw new InvalidArgumentError("key", "must be a string");
    const now = this.now();
    const t = this.table;
    const off = t.slot(key, now) * t.width;
    const id = this.nextId++;
    let held: number;
    let generation = 0;
    if (this.ttl === Infinity) {
      if (t.state[off + 1] === 0) t.state[off + 1] = ++this.generation;
      generation = t.state[off + 1]!;
      held = t.state[off]! < this.limit ? ++t.state[off]! : -1;
    } else {
      held = concurrencyAcquire(t.state, off, now, id, this.ttl, this.limit);
    }
    if (held >= 0) {
      const remaining = this.limit - held;
      return { decision: new Decision(true, remaining, this.limit, 0, 0, undefined, remaining <= this.limit * 0.2, false), lease: this.lease(key, id, generation) };
    }
    const retry = this.ttl === Infinity ? 0 : msUntil(now, concurrencyEarliestExpiry(t.state, off));
    if (this.shadow) {
      return { decision: new Decision(true, 0, this.limit, retry, 0, "concurrency_limit", true, true), lease: undefined };
    }
    return { decision: new Decision(false, 0, this.limit, retry, retry, "concurrency_limit", true, false), lease: undefined };
  }

  /** Leases held by `key` now. */
  held(key: string): number {
    // Every operation observes the clock, so the clamp against clock
    // regressions does not depend on which keys happen to exist.
    const now = this.now();
    const slot = this.table.find(key);
    if (slot < 0) return 0;
    const off = slot * this.table.width;
    return this.ttl === Infinity ? this.table.state[off]! : concurrencyPrune(this.table.state, off, now);
  }

  reset(key: string): void {
    this.table.delete(key);
  }

  /** `generation` identifies the slot's life in counted mode (0 with a TTL, where lease ids do that). */
  private lease(key: string, id: number, generation: number): Lease {
    let released = false;
    const sameLife = (off: number): boolean => this.table.state[off + 1] === generation;
    return {
      key,
      id,
      release: () => {
        const now = this.now();
        if (released) return;
        released = true;
        const slot = this.table.find(key);
        if (slot < 0) return;
        const off = slot * this.table.width;
        if (this.ttl === Infinity) {
          if (sameLife(off) && this.table.state[off]! > 0) this.table.state[off]!--;
        } else {
          concurrencyRelease(this.table.state, off, now, id);
        }
      },
      renew: () => {
        const now = this.now();
        if (released) return false;
        const slot = this.table.find(key);
        if (slot < 0) return false;
        if (this.ttl === Infinity) return sameLife(slot * this.table.width);
        return concurrencyRenew(this.table.state, slot * this.table.width, now, id, this.ttl);
      },
    };
  }

  private now(): number {
    const t = this.clock.now();
    if (t > this.lastNow) this.lastNow = t;
    return this.lastNow;
  }
}

function countedInit(s: Float64Array, o: number): void {
  s[o] = 0;
  s[o + 1] = 0;
}
