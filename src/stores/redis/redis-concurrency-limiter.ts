import { randomUUID } from "node:crypto";
import { type Clock, systemClock } from "../../core/clock.js";
import { InvalidArgumentError } from "../../core/errors.js";
import { integerAtLeast, positive } from "../../core/validate.js";
import { ConcurrencyLimiter } from "../../limiter/concurrency-limiter.js";
import { Decision } from "../../limiter/decision.js";
import { stateKey, validName } from "./keys.js";
import { LuaScript } from "./lua-script.js";
import type { RedisStore } from "./redis-store.js";
import { CONCURRENCY_SCRIPT } from "./scripts/concurrency.js";

const CONCURRENCY = new LuaScript("concurrency", CONCURRENCY_SCRIPT);

export interface RedisConcurrencyLimiterOptions {
  store: RedisStore;
  name?: string;
  /** Most leases held at once per key, across every instance. */
  limit: number;
  /**
   * A lease not renewed or released within this time frees its slot
   * (default: never). Set it in production: it is what frees the slots of
   * a gateway that crashed while holding them.
   */
  leaseTtlMs?: number;
  /** A clock to use instead of Redis TIME (tests). */
  clock?: Clock;
  shadow?: boolean;
}

/** A held slot. `release()` is idempotent; `renew()` pushes the TTL back. */
export interface AsyncLease {
  readonly key: string;
  readonly id: string;
  release(): Promise<void>;
  renew(): Promise<boolean>;
}

export interface AsyncConcurrencyResult {
  readonly decision: Decision;
  readonly lease: AsyncLease | undefined;
}

/**
 * Caps concurrent holders per key across instances (connections per IP,
 * in-flight requests per user): each lease is a member of a sorted set in
 * Redis scored by its expiry. While Redis is unavailable, leases come from
 * a local limiter with the limit divided by the expected instance count.
 */
export class RedisConcurrencyLimiter {
  readonly name: string;
  readonly limit: number;
  readonly algorithm = "concurrency";
  readonly shadow: boolean;
  private readonly store: RedisStore;
  private readonly ttl: string;
  private readonly clock: Clock | undefined;
  private readonly instance = randomUUID().slice(0, 12);
  private readonly local: ConcurrencyLimiter;
  private nextId = 1;
  private lastNow = -Infinity;

  constructor(o: RedisConcurrencyLimiterOptions) {
    this.limit = integerAtLeast("limit", o.limit, 1);
    this.store = o.store;
    this.name = validName(o.name ?? o.store.generateName("concurrency"));
    this.ttl = o.leaseTtlMs === undefined ? "inf" : String(positive("leaseTtlMs", o.leaseTtlMs));
    this.clock = o.clock;
    this.shadow = o.shadow ?? false;
    this.local = new ConcurrencyLimiter({
      name: this.name,
      limit: Math.max(1, Math.floor(this.limit / this.store.expectedInstances)),
      leaseTtlMs: o.leaseTtlMs,
      clock: o.clock ?? systemClock,
    });
  }

  async tryAcquire(key: string): Promise<AsyncConcurrencyResult> {
    if (typeof key !== "string") throw new InvalidArgumentError("key", "must be a string");
    const id = `${this.instance}:${this.nextId++}`;
    const r = await this.call("acquire", key, id);
    if (r === undefined) return this.fallback(key);
    if (r.ok) {
      const remaining = this.limit - r.held;
      return { decision: new Decision(true, remaining, this.limit, 0, 0, undefined, remaining <= this.limit * 0.2, false), lease: this.lease(key, id) };
    }
    if (this.shadow) return { decision: new Decision(true, 0, this.limit, r.retry, 0, "concurrency_limit", true, true), lease: undefined };
    return { decision: new Decision(false, 0, this.limit, r.retry, r.retry, "concurrency_limit", true, false), lease: undefined };
  }

  /** Leases held by `key` now, across instances (undefined if Redis did not answer). */
  async held(key: string): Promise<number | undefined> {
    const r = await this.call("count", key, "");
    return r?.held;
  }

  private fallback(key: string): AsyncConcurrencyResult {
    this.store.countFallback();
    const mode = this.store.failureMode;
    if (mode === "open") return { decision: new Decision(true, this.limit, this.limit, 0, 0, undefined, false, false), lease: noopLease(key) };
    if (mode === "closed") {
      const wait = this.store.probeIntervalMs;
      return { decision: new Decision(false, 0, this.limit, wait, wait, "store_unavailable", true, false), lease: undefined };
    }
    const r = this.local.tryAcquire(key);
    const l = r.lease;
    if (l === undefined) return { decision: r.decision, lease: undefined };
    return {
      decision: r.decision,
      lease: { key, id: `local:${l.id}`, release: async () => l.release(), renew: async () => l.renew() },
    };
  }

  private lease(key: string, id: string): AsyncLease {
    let released = false;
    return {
      key,
      id,
      release: async () => {
        if (released) return;
        released = true;
        // If Redis does not answer, the lease TTL frees the slot.
        await this.call("release", key, id);
      },
      renew: async () => {
        if (released) return false;
        const r = await this.call("renew", key, id);
        return r?.ok ?? false;
      },
    };
  }

  private async call(op: string, key: string, id: string): Promise<{ ok: boolean; held: number; retry: number } | undefined> {
    const reply = await this.store.run(CONCURRENCY, [stateKey(this.store.prefix, this.name, key)], [op, this.nowArg(), id, this.ttl, String(this.limit)]);
    if (typeof reply !== "string") return undefined;
    const f = reply.split(" ").map(Number);
    return { ok: f[0] === 1, held: f[1]!, retry: f[2]! };
  }

  private nowArg(): string {
    if (this.clock === undefined) return "";
    const t = this.clock.now();
    if (t > this.lastNow) this.lastNow = t;
    return String(this.lastNow);
  }
}

function noopLease(key: string): AsyncLease {
  return { key, id: "open", release: async () => {}, renew: async () => true };
}
