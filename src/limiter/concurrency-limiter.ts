/** The concurrency limiter: at most `limit` slots held per key at once, on any store. */
import { type Clock, systemClock } from "../core/clock.js";
import { InvalidArgumentError } from "../core/errors.js";
import { integerAtLeast, positive } from "../core/validate.js";
import { MemoryStore } from "../stores/memory-store.js";
import { FAILED, type Failed, type LeaseGrant, type LeaseId, type LeaseOp, type LeaseRelease, type LeaseTable, type Reply, STORE_TIME, type Store } from "../stores/store.js";
import { type Decision, type DecisionPolicy, allowed, decide, decisionPolicy, rejected } from "./decision.js";
import { fallback, insuranceShare } from "./failure-modes.js";
import { refuse, then, value } from "./reply.js";

import { MAX_TRACKED_LEASES } from "../stores/memory-lease-table.js";

export { MAX_TRACKED_LEASES };

export interface ConcurrencyLimiterOptions<S extends boolean = true> {
  /** Unique within its store (default: a generated name). */
  name?: string;
  /** Most leases held at once per key (across every instance on a shared store). */
  limit: number;
  /**
   * A lease not renewed or released within this time frees its slot
   * (default: never). Set it on a shared store: it is what frees the slots
   * of an instance that crashed while holding them.
   */
  leaseTtlMs?: number;
  /** Where the leases live (default: a memory store of its own). */
  store?: Store<S>;
  /** Default: the local clock on the memory store, the store's own clock on a store that keeps time. */
  clock?: Clock;
  shadow?: boolean;
  /** Share of the limit at or below which `nearLimit` is set (default 0.2). */
  nearLimitRatio?: number;
}

/** A held slot. `release()` is idempotent; `renew()` pushes the TTL back. */
export interface Lease<S extends boolean = true> {
  readonly key: string;
  readonly id: LeaseId;
  release(): Reply<S, void>;
  renew(): Reply<S, boolean>;
  /**
   * @internal A lease held in the store: marks it released and answers the
   * store operation that ends it, for a caller that ends several leases in
   * one call (`releaseAll`); undefined when it was released already.
   * Absent on the failure mode's leases (they end by `release()`).
   */
  releaseOp?(): LeaseRelease<S> | undefined;
}

/** Ids of the leases a failure mode hands out: a local insurance slot, or none at all (open). */
const LOCAL_LEASE = "local:";
const OPEN_LEASE = "open";

/**
 * True for a lease the failure mode handed out while the store was
 * unavailable: it holds no slot in the store, so once the store answers
 * again its holder may take a real one (see the gateway's lease renewer).
 */
export function isFallbackLease(l: Lease<boolean>): boolean {
  return l.id === OPEN_LEASE || (typeof l.id === "string" && l.id.startsWith(LOCAL_LEASE));
}

export interface ConcurrencyResult<S extends boolean = true> {
  readonly decision: Decision;
  /** Present when allowed (also in shadow mode, so the slot count stays true). */
  readonly lease: Lease<S> | undefined;
}

/**
 * Caps concurrent holders per key (connections per IP, in-flight requests
 * per user), on any store. With a TTL each lease is tracked by id, so a lost
 * lease expires on its own. While a store that can fail is unavailable its
 * failure mode decides (insurance: a local limiter with the limit divided
 * by the expected instances).
 */
export class ConcurrencyLimiter<S extends boolean = true> {
  readonly sync: S;
  readonly name: string;
  readonly limit: number;
  readonly algorithm = "concurrency";
  readonly shadow: boolean;
  readonly store: Store<S>;
  private readonly ttl: number;
  private readonly table: LeaseTable<S>;
  private readonly clock: Clock | undefined;
  private readonly policy: DecisionPolicy;
  private local: ConcurrencyLimiter<true> | undefined;
  private lastNow = -Infinity;

  constructor(o: ConcurrencyLimiterOptions<S>) {
    this.limit = integerAtLeast("limit", o.limit, 1);
    this.ttl = o.leaseTtlMs === undefined ? Infinity : positive("leaseTtlMs", o.leaseTtlMs);
    this.shadow = o.shadow ?? false;
    this.policy = decisionPolicy(this.limit, o.nearLimitRatio, this.shadow);
    this.store = o.store ?? (new MemoryStore() as unknown as Store<S>);
    this.sync = this.store.sync;
    this.clock = o.clock ?? (this.store.storeTime ? undefined : systemClock);
    this.name = o.name ?? this.store.generateName("concurrency");
    this.table = this.store.leaseTable(this.name, { limit: this.limit, ttlMs: this.ttl, clockInjected: o.clock !== undefined });
  }

  tryAcquire(key: string): Reply<S, ConcurrencyResult<S>> {
    if (typeof key !== "string") return refuse(this.sync, new InvalidArgumentError("key", "must be a string"));
    return then(this.sync, this.table.acquire(key, this.now()), (g: LeaseGrant | Failed) => (g === FAILED ? this.fallback(key) : this.granted(key, g)));
  }

  /** Leases held by `key` now (undefined when a store that can fail did not answer and no insurance stands in). */
  held(key: string): Reply<S, S extends true ? number : number | undefined> {
    // Every operation observes the clock, so the clamp against clock
    // regressions does not depend on which keys happen to exist.
    return then(this.sync, this.table.held(key, this.now()), (n: number | Failed) => n) as Reply<S, S extends true ? number : number | undefined>;
  }

  reset(key: string): Reply<S, void> {
    this.local?.reset(key);
    return this.table.delete(key);
  }

  /** @internal The acquire of `key` as an operation of a store's `admitAll`. */
  acquireOp(key: string): LeaseOp<S> {
    if (typeof key !== "string") throw new InvalidArgumentError("key", "must be a string");
    return { table: this.table, key, now: this.now(), shadow: this.shadow };
  }

  /** @internal The result of an acquire the store answered as part of an `admitAll` (FAILED: the failure mode decides). */
  resultOf(key: string, g: LeaseGrant | Failed): ConcurrencyResult<S> {
    return g === FAILED ? this.fallback(key) : this.granted(key, g);
  }

  private granted(key: string, g: LeaseGrant): ConcurrencyResult<S> {
    if (g.held >= 0) return { decision: decide(allowed(this.limit - g.held), this.policy), lease: this.lease(key, g.id) };
    return { decision: decide(rejected("concurrency_limit", g.retryAfterMs), this.policy), lease: undefined };
  }

  /** The failure mode's answer when the store did not answer an acquire. */
  private fallback(key: string): ConcurrencyResult<S> {
    let lease: Lease<S> | undefined;
    const o = fallback(this.store.failure, this.limit, () => {
      const share = insuranceShare(this.limit, this.store.failure!.expectedInstances);
      this.local ??= new ConcurrencyLimiter({
        name: `${this.name}:concurrency`,
        limit: share,
        // Leases by id (with expiry) are bounded per key in memory; past that the local slots are counted
        // and end on release only, which suffices for state that dies with the process holding it.
        ...(this.ttl === Infinity || share > MAX_TRACKED_LEASES ? {} : { leaseTtlMs: this.ttl }),
        store: this.store.failure!.insurance,
        clock: this.clock ?? systemClock,
      });
      const r = this.local.tryAcquire(key);
      const l = r.lease;
      if (l !== undefined) {
        lease = { key, id: `${LOCAL_LEASE}${l.id}`, release: () => value(this.sync, l.release()), renew: () => value(this.sync, l.renew()) };
      }
      return r.decision;
    });
    // Open: a lease that holds nothing (the store holds no slot to give back).
    if (o.allowed && lease === undefined) lease = { key, id: OPEN_LEASE, release: () => value(this.sync, undefined), renew: () => value(this.sync, true) };
    return { decision: decide(o, this.policy), lease: o.allowed ? lease : undefined };
  }

  private lease(key: string, id: LeaseId): Lease<S> {
    let released = false;
    return {
      key,
      id,
      releaseOp: () => {
        if (released) return undefined;
        released = true;
        return { table: this.table, key, id, now: this.now() };
      },
      release: () => {
        const now = this.now();
        if (released) return value(this.sync, undefined);
        released = true;
        // If a store that can fail does not answer, the lease TTL frees the slot.
        return then(this.sync, this.table.release(key, id, now), () => undefined);
      },
      renew: () => {
        const now = this.now();
        if (released) return value(this.sync, false);
        return then(this.sync, this.table.renew(key, id, now), (ok: boolean | Failed) => ok ?? false);
      },
    };
  }

  private now(): number {
    const c = this.clock;
    if (c === undefined) return STORE_TIME;
    const t = c.now();
    if (t > this.lastNow) this.lastNow = t;
    return this.lastNow;
  }
}
