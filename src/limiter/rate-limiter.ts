/** RateLimiter: a rate limit over any store, synchronous on memory, asynchronous on shared stores. */
import { type LimitSpec, type RateLimitOptions, limitSpec } from "../algorithms/limit-spec.js";
import { Outcome } from "../algorithms/outcome.js";
import { type Clock, TurnCachedClock, systemClock } from "../core/clock.js";
import { InvalidArgumentError } from "../core/errors.js";
import { cost as validCost } from "../core/validate.js";
import { MemoryStore } from "../stores/memory-store.js";
import { FAILED, type Failed, type RateTable, type Reply, STORE_TIME, type Store } from "../stores/store.js";
import { type Decision, type DecisionPolicy, type OutcomeView, decide, decisionPolicy } from "./decision.js";
import { fallback, insuranceRateOptions } from "./failure-modes.js";
import { FixedWindowQueue } from "./fixed-window-queue.js";
import { SharedQueueSeats } from "./queue-seats.js";
import { refuse, then } from "./reply.js";
import type { AcquireOptions, LimiterInfo } from "./types.js";

export type RateLimiterOptions<S extends boolean = true> = RateLimitOptions & {
  /** Unique within its store (default: a generated name, unique only within this store instance). */
  name?: string;
  /** Where the state lives (default: a memory store of its own). */
  store?: Store<S>;
  /**
   * The clock to read. Default: a turn-cached local clock on the memory
   * store; the store's own clock (Redis TIME) on a store that keeps time.
   * An injected clock is sent with every call instead.
   */
  clock?: Clock;
  /** Compute and report decisions, never enforce them. */
  shadow?: boolean;
  /** Share of the limit at or below which `nearLimit` is set (default 0.2). */
  nearLimitRatio?: number;
  /** Shortest key lifetime in ms on stores that expire keys (Redis; default 1,000 with the store's clock, 600,000 with an injected one). */
  keyTtlFloorMs?: number;
};

/** The options of a limit on the memory store (the name kept from earlier versions). */
export type MemoryLimiterOptions = RateLimiterOptions<true>;

/**
 * A rate limit over any store. On a sync store (memory) every method
 * answers at once; on an async store (Redis, message) with a Promise. The
 * memory hot path is: clamp the clock, run the algorithm's transition in
 * place on the key's slot (the store writes into this limit's Outcome),
 * build the Decision. `allow()` allocates nothing; `check()` only its
 * Decision. When a store that can fail does not answer, the store's
 * failure mode decides (see failure-modes.ts); a check never rejects for a
 * store reason.
 */
export class RateLimiter<S extends boolean = true> implements LimiterInfo, DecisionPolicy {
  readonly sync: S;
  readonly name: string;
  readonly algorithm: string;
  readonly limit: number;
  readonly shadow: boolean;
  readonly spec: LimitSpec;
  readonly store: Store<S>;
  /** @internal The store's table of this limit. */
  readonly table: RateTable<S>;
  /** @internal remaining at or below this is near the limit (limit × nearLimitRatio). */
  readonly nearThreshold: number;
  /** STORE_CLOCK when the store reads its own clock. */
  private readonly clock: Clock;
  private readonly out = new Outcome();
  private readonly queue: FixedWindowQueue<S> | undefined;
  private insuranceLimiter: RateLimiter<true> | undefined;
  private lastNow = -Infinity;

  constructor(o: RateLimiterOptions<S>) {
    this.spec = limitSpec(o);
    this.store = o.store ?? (new MemoryStore() as unknown as Store<S>);
    this.sync = this.store.sync;
    this.name = o.name ?? this.store.generateName(o.algorithm);
    if (typeof this.name !== "string" || this.name.length === 0) throw new InvalidArgumentError("name", "must be a non-empty string");
    this.algorithm = this.spec.kind;
    this.limit = this.spec.algorithm.limit(this.spec.params as never);
    this.shadow = o.shadow ?? false;
    // The limit is its own decision policy: decide() then reads these fields
    // where they are, and the memory hot path boxes no number for the Decision.
    this.nearThreshold = decisionPolicy(this.limit, o.nearLimitRatio, this.shadow).nearThreshold;
    this.clock = o.clock ?? (this.store.storeTime ? STORE_CLOCK : new TurnCachedClock());
    if (this.clock === STORE_CLOCK) this.lastNow = STORE_TIME;
    this.table = this.store.rateTable(this.name, this.spec, { clockInjected: o.clock !== undefined, keyTtlFloorMs: o.keyTtlFloorMs });
    if (this.spec.kind === "fixed_window" && this.spec.queue) {
      const windowMs = this.spec.params.windowMs;
      // A store shared by instances counts the queue too (the memory store is this process: the local count is exact).
      const seats = this.sync
        ? undefined
        : new SharedQueueSeats({
            name: `${this.name}:queue`,
            limit: this.spec.queue.limit,
            // Renewed at every window a waiter is not admitted in; two windows and a second of slack.
            ttlMs: 2 * windowMs + 1000,
            store: this.store,
            ...(o.clock === undefined ? {} : { clock: o.clock }),
          });
      this.queue = new FixedWindowQueue(this.spec.queue, this.spec.params, this.clock === STORE_CLOCK ? systemClock : this.clock, {
        sync: this.sync,
        ...(seats === undefined ? {} : { seats }),
        aligned: this.clock !== STORE_CLOCK,
        now: () => this.localNow(),
        consume: (key, c) => this.settled(this.table.consume(key, c, this.now(), this.out), key, c, false),
        peek: (key, c) => this.settled(this.table.peek(key, c, this.now(), this.out), key, c, true),
      });
    }
  }

  check(key: string, cost = 1): Reply<S, Decision> {
    if (typeof key !== "string" || cost !== 1) {
      const err = invalid(key, cost);
      if (err !== undefined) return refuse(this.sync, err);
    }
    if (this.queue !== undefined && this.queue.hasWaiters(key)) return then(this.sync, this.queue.behind(key, cost), (o) => decide(o, this));
    const out = this.out;
    const r = this.table.consume(key, cost, this.now(), out);
    // The sync fast path: a store that answered in place (memory) handed back
    // this limit's own Outcome, so one identity test rules out both a Promise
    // and FAILED, and decide() reads a single known shape. The rest
    // (FAILED, async stores, a sync store answering its own Outcome) goes
    // through decideReply. 20 fewer instructions per check than testing
    // `sync` and FAILED in turn (docs/benchmarks.md, "One engine over any store").
    if (r === out) return decide(out, this) as Reply<S, Decision>;
    return this.decideReply(r, key, cost);
  }

  /**
   * The same check as `check`, answering only allowed or not. On the memory
   * store it allocates nothing, for hot paths that do not need the numbers
   * (shadow mode answers true, like `check`).
   */
  allow(key: string, cost = 1): Reply<S, boolean> {
    if (typeof key !== "string" || cost !== 1) {
      const err = invalid(key, cost);
      if (err !== undefined) return refuse(this.sync, err);
    }
    if (this.queue !== undefined && this.queue.hasWaiters(key)) return then(this.sync, this.queue.behind(key, cost), (o) => o.allowed || this.shadow);
    const out = this.out;
    const r = this.table.consume(key, cost, this.now(), out);
    // The sync fast path, as in check().
    if (r === out) return (out.allowed || this.shadow) as Reply<S, boolean>;
    return this.allowedReply(r, key, cost);
  }

  peek(key: string, cost = 1): Reply<S, Decision> {
    const err = invalid(key, cost);
    if (err !== undefined) return refuse(this.sync, err);
    // Waiters stand between this key and its free permits: answer as check would.
    if (this.queue !== undefined && this.queue.hasWaiters(key)) return then(this.sync, this.queue.peekBehind(key, cost), (o) => decide(o, this));
    return then(this.sync, this.table.peek(key, cost, this.now(), this.out), (o: Outcome | Failed) => decide(o ?? this.fallback(key, cost, true), this));
  }

  reset(key: string): Reply<S, void> {
    if (typeof key !== "string") return refuse(this.sync, new InvalidArgumentError("key", "must be a string"));
    this.insuranceLimiter?.reset(key);
    return this.table.delete(key);
  }

  async acquire(key: string, cost = 1, options: AcquireOptions = {}): Promise<Decision> {
    const err = invalid(key, cost);
    if (err !== undefined) throw err;
    // A shadowed limit only reports: it never makes a caller wait.
    if (this.queue === undefined || this.shadow) return (await this.check(key, cost)) as Decision;
    return decide(await this.queue.acquire(key, cost, options.signal, options.onQueued), this);
  }

  /** Fails every queued waiter and stops the limit's timers. */
  dispose(): void {
    this.queue?.dispose();
  }

  /** Keys this limit tracks now (0 where the store cannot tell at no cost). */
  get size(): number {
    return this.table.size ?? 0;
  }

  /** @internal The limit's clock reading as sent to the store: never earlier than any before it, or STORE_TIME (NaN). */
  now(): number {
    // One path for every store, so every reading stays an unboxed double (a
    // branch returning a constant NaN made V8 box each one: an allocation per
    // check). A limit on the store's clock starts at lastNow = NaN, and
    // NaN > NaN never holds: it answers STORE_TIME (NaN) forever.
    const t = this.clock.now();
    if (t > this.lastNow) this.lastNow = t;
    return this.lastNow;
  }

  /** @internal The limit's time on this host (the local clock when the store keeps time). */
  localNow(): number {
    return this.clock === STORE_CLOCK ? systemClock.now() : this.now();
  }

  /** @internal The queue of this limit, if it has one. */
  get waitQueue(): FixedWindowQueue<S> | undefined {
    return this.queue;
  }

  /** @internal True when the queue has no store call in flight (tests wait on it). */
  queueIdle(): boolean {
    return this.queue === undefined || this.queue.idle;
  }

  /** @internal The decision for an outcome of this limit (the failure mode's when the store did not answer). */
  decide(o: Outcome | Failed, key: string, cost: number): Decision {
    return decide(o === FAILED ? this.fallback(key, cost, false) : o, this);
  }

  /** @internal The store's answer, or the failure mode's when it did not answer. */
  settled(r: Reply<S, Outcome | Failed>, key: string, cost: number, peek: boolean): Reply<S, Outcome> {
    return then(this.sync, r, (o: Outcome | Failed) => (o === FAILED ? toOutcome(this.fallback(key, cost, peek)) : o));
  }

  /** @internal The failure mode's answer for a call this limit's store did not answer. */
  fallback(key: string, cost: number, peek: boolean): OutcomeView {
    return fallback(this.store.failure, this.limit, () => {
      const ins = this.insurance();
      return peek ? ins.peek(key, cost) : ins.check(key, cost);
    });
  }

  /** @internal The local limit answering while the store is unavailable (failure mode "insurance"). */
  insurance(): RateLimiter<true> {
    const f = this.store.failure!;
    this.insuranceLimiter ??= new RateLimiter({
      ...insuranceRateOptions(this.spec, f.expectedInstances),
      store: f.insurance,
      clock: this.clock === STORE_CLOCK ? systemClock : this.clock,
      // Named per algorithm: two limits sharing a name must not collide in the local store.
      name: `${this.name}:${this.spec.kind}`,
    });
    return this.insuranceLimiter;
  }

  /** check() for every answer but an in-place one: FAILED, a Promise, another Outcome. */
  private decideReply(r: Reply<S, Outcome | Failed>, key: string, cost: number): Reply<S, Decision> {
    if (this.sync) return this.decide(r as Outcome | Failed, key, cost) as Reply<S, Decision>;
    // The async hot path: one promise from the store, one continuation.
    return (r as Promise<Outcome | Failed>).then((o) => this.decide(o, key, cost)) as Reply<S, Decision>;
  }

  /** allow() for every answer but an in-place one. */
  private allowedReply(r: Reply<S, Outcome | Failed>, key: string, cost: number): Reply<S, boolean> {
    if (this.sync) return this.allowed(r as Outcome | Failed, key, cost) as Reply<S, boolean>;
    return (r as Promise<Outcome | Failed>).then((o) => this.allowed(o, key, cost)) as Reply<S, boolean>;
  }

  private allowed(o: Outcome | Failed, key: string, cost: number): boolean {
    return (o === FAILED ? this.fallback(key, cost, false).allowed : o.allowed) || this.shadow;
  }
}

/** The clock of a limit whose store reads its own: every reading is STORE_TIME. */
const STORE_CLOCK: Clock = {
  now: () => STORE_TIME,
  wallNow: () => systemClock.wallNow(),
  setTimer: (fn, ms) => systemClock.setTimer(fn, ms),
};

function invalid(key: unknown, cost: number): Error | undefined {
  if (typeof key !== "string") return new InvalidArgumentError("key", "must be a string");
  if (cost === 1) return undefined;
  try {
    validCost(cost);
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

function toOutcome(v: OutcomeView): Outcome {
  const o = new Outcome();
  if (v.allowed) o.allow(v.remaining, v.resetMs);
  else o.reject(v.reason ?? "rate_limited", v.remaining, v.resetMs, v.retryAfterMs);
  return o;
}
