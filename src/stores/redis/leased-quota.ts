/** A GCRA budget in Redis from which instances lease slices. */
import { gcraParams, type GcraParams } from "../../algorithms/gcra.js";
import { limitSpec } from "../../algorithms/limit-spec.js";
import { Outcome } from "../../algorithms/outcome.js";
import { type Clock, type TimerHandle, systemClock } from "../../core/clock.js";
import { InvalidArgumentError } from "../../core/errors.js";
import { integerAtLeast, nonNegative, positive } from "../../core/validate.js";
import type { MemoryRateTable } from "../memory-rate-table.js";
import { stateKey, validName } from "./key-names.js";
import { LuaScript } from "./lua-script.js";
import type { RedisStore } from "./redis-store.js";
import { LEASE_SCRIPT } from "./scripts/lease.js";

const LEASE = new LuaScript("lease", LEASE_SCRIPT);

export interface LeasedQuotaOptions {
  store: RedisStore;
  name?: string;
  /** Units (bytes, packets) replenished per period. */
  rate: number;
  periodMs?: number;
  /** Most units available at once (default: rate). */
  burst?: number;
  /** Time's worth of rate reserved at once (default 100 ms): the size of a slice. */
  sliceMs?: number;
  /** A lease unused for this long returns its rest to Redis (default 200 ms). */
  idleMs?: number;
  /** Most keys holding a lease at once (default 10,000); the least recent returns its lease beyond that. */
  maxKeys?: number;
  /** A clock to use instead of Redis TIME (tests); also drives the idle sweep. */
  clock?: Clock;
}

export interface Grant {
  /** Units granted now (at most what was asked; 0 when the bucket is empty). */
  readonly granted: number;
  /** When nothing was granted: the wait until one unit is available. */
  readonly retryAfterMs: number;
}

interface LeaseEntry {
  balance: number;
  lastUse: number;
  refill: Promise<void> | undefined;
  retryAfterMs: number;
}

/**
 * A bucket in Redis spent in slices: an instance reserves `sliceMs` worth of
 * the rate in one call, spends it locally (no I/O per chunk) and returns
 * what it did not use once the key goes idle. A busy stream costs a few
 * Redis calls per second instead of one per chunk. What every instance
 * spends is charged in Redis before it is spent, so the total stays within
 * the bucket's limit; at any moment each instance holds at most one
 * unspent slice per key.
 */
export class LeasedQuota {
  readonly name: string;
  readonly params: GcraParams;
  /** Units per reservation. */
  readonly slice: number;
  private readonly store: RedisStore;
  private readonly clock: Clock;
  private readonly injected: boolean;
  private readonly spec: string;
  private readonly idleMs: number;
  private readonly maxKeys: number;
  private readonly leases = new Map<string, LeaseEntry>();
  /** The local bucket answering while Redis is unavailable (failure mode "insurance"). */
  private insurance: MemoryRateTable | undefined;
  private readonly insuranceOut = new Outcome();
  private lastLocal = -Infinity;
  private sweepTimer: TimerHandle | undefined;
  private lastNow = -Infinity;
  private disposed = false;
  /** Reservations sent to Redis (for metrics and tests). */
  reservations = 0;

  constructor(o: LeasedQuotaOptions) {
    this.params = gcraParams(o);
    this.store = o.store;
    this.name = validName(o.name ?? o.store.generateName("lease"));
    const sliceMs = positive("sliceMs", o.sliceMs ?? 100);
    this.slice = Math.max(1, Math.min(this.params.burst, Math.floor((this.params.rate * sliceMs) / this.params.periodMs)));
    this.idleMs = positive("idleMs", o.idleMs ?? 200);
    this.maxKeys = integerAtLeast("maxKeys", o.maxKeys ?? 10_000, 1);
    this.injected = o.clock !== undefined;
    this.clock = o.clock ?? systemClock;
    const floor = this.injected ? 600_000 : 1000;
    this.spec = `${this.params.intervalMs} ${this.params.toleranceMs} ${this.params.burst} ${floor}`;
  }

  /** Spends up to `amount` units from this instance's lease only (no I/O); returns what was granted. */
  trySpend(key: string, amount: number): number {
    const e = this.leases.get(key);
    if (e === undefined || e.balance <= 0) return 0;
    const g = Math.min(e.balance, amount);
    e.balance -= g;
    e.lastUse = this.clock.now();
    return g;
  }

  /**
   * Grants up to `amount` units: from the local lease, reserving a new slice
   * from Redis when it runs out. A chunk larger than a slice is granted in
   * part; ask again for the rest. When the bucket holds less than a slice,
   * what the lease holds is granted, or nothing with the wait until a
   * slice is there. Never rejects for a Redis reason (while
   * Redis is unavailable the store's failure mode answers).
   */
  async take(key: string, amount: number): Promise<Grant> {
    if (typeof key !== "string") throw new InvalidArgumentError("key", "must be a string");
    nonNegative("amount", amount);
    if (this.disposed) return { granted: 0, retryAfterMs: 0 };
    let granted = this.trySpend(key, amount);
    if (granted >= amount) return { granted, retryAfterMs: 0 };
    const e = this.entry(key);
    // One reservation in flight per key and instance: concurrent takers share it.
    e.refill ??= this.refill(key, e).finally(() => {
      e.refill = undefined;
    });
    await e.refill;
    granted += this.trySpend(key, amount - granted);
    return { granted, retryAfterMs: granted > 0 ? 0 : e.retryAfterMs };
  }

  /** Units available in the shared bucket now (a Redis read; undefined if Redis did not answer). */
  async available(key: string): Promise<number | undefined> {
    const r = await this.call("peek", key, 0);
    return r?.available;
  }

  /** Returns every unspent lease to Redis and stops the idle sweep. */
  async dispose(): Promise<void> {
    this.disposed = true;
    this.sweepTimer?.cancel();
    this.sweepTimer = undefined;
    const keys = [...this.leases.keys()];
    await Promise.all(keys.map((k) => this.giveBack(k)));
  }

  /** Leases this instance holds now (keys with an unspent slice). */
  get held(): number {
    return this.leases.size;
  }

  private entry(key: string): LeaseEntry {
    let e = this.leases.get(key);
    if (e === undefined) {
      if (this.leases.size >= this.maxKeys) {
        const oldest = this.leases.keys().next();
        if (!oldest.done) void this.giveBack(oldest.value);
      }
      e = { balance: 0, lastUse: this.clock.now(), refill: undefined, retryAfterMs: 0 };
      this.leases.set(key, e);
      this.scheduleSweep();
    }
    return e;
  }

  private async refill(key: string, e: LeaseEntry): Promise<void> {
    this.reservations++;
    // Whole slices only: under contention a partial grant would cost one
    // call per chunk; waiting for a slice costs at most sliceMs.
    const r = await this.call("take", key, this.slice);
    if (r === undefined) {
      // Redis unavailable: the failure mode decides one slice.
      const g = this.fallback(key);
      e.balance += g.granted;
      e.retryAfterMs = g.retryAfterMs;
      return;
    }
    e.balance += r.granted;
    e.retryAfterMs = r.retryAfterMs;
  }

  private fallback(key: string): Grant {
    this.store.countFallback();
    switch (this.store.failureMode) {
      case "open":
        return { granted: this.slice, retryAfterMs: 0 };
      case "closed":
        return { granted: 0, retryAfterMs: this.store.probeIntervalMs };
      case "insurance": {
        const n = this.store.expectedInstances;
        const p = this.params;
        // The same bucket with its rate and burst divided by the instances sharing Redis.
        this.insurance ??= this.store.insurance.rateTable(
          this.name,
          limitSpec({ algorithm: "gcra", rate: p.rate / n, periodMs: p.periodMs, burst: Math.max(1, p.burst / n) }),
        );
        const want = Math.max(1, Math.min(this.slice, Math.floor(Math.max(1, p.burst / n))));
        const t = this.clock.now();
        if (t > this.lastLocal) this.lastLocal = t;
        const o = this.insurance.consume(key, want, this.lastLocal, this.insuranceOut);
        return o.allowed ? { granted: want, retryAfterMs: 0 } : { granted: 0, retryAfterMs: Math.max(1, o.retryAfterMs) };
      }
    }
  }

  private scheduleSweep(): void {
    if (this.sweepTimer !== undefined || this.disposed) return;
    this.sweepTimer = this.clock.setTimer(() => {
      this.sweepTimer = undefined;
      const now = this.clock.now();
      for (const [key, e] of this.leases) {
        if (e.refill === undefined && now - e.lastUse >= this.idleMs) void this.giveBack(key);
      }
      if (this.leases.size > 0) this.scheduleSweep();
    }, this.idleMs);
  }

  /** Forgets the lease of `key` and returns its unspent balance to Redis. */
  private async giveBack(key: string): Promise<void> {
    const e = this.leases.get(key);
    if (e === undefined) return;
    this.leases.delete(key);
    if (e.refill !== undefined) await e.refill;
    const rest = Math.floor(e.balance);
    e.balance = 0;
    if (rest > 0) await this.call("give", key, rest);
  }

  private async call(op: "take" | "give" | "peek", key: string, amount: number): Promise<{ granted: number; retryAfterMs: number; available: number } | undefined> {
    const reply = await this.store.run(LEASE, [stateKey(this.store.prefix, this.name, key)], [op, this.nowArg(), this.spec, String(amount), String(amount)]);
    if (typeof reply !== "string") return undefined;
    const f = reply.split(" ").map(Number);
    return { granted: f[0]!, retryAfterMs: f[1]!, available: f[2]! };
  }

  private nowArg(): string {
    if (!this.injected) return "";
    const t = this.clock.now();
    if (t > this.lastNow) this.lastNow = t;
    return String(this.lastNow);
  }
}
