/** The penalty-box limiter: authentication failures per key, back-off and bans, on any store. */
import { msUntil } from "../algorithms/outcome.js";
import { type PenaltyOptions, type PenaltyParams, type PenaltyStatus, penaltyParams } from "../algorithms/penalty-box.js";
import { type Clock, systemClock } from "../core/clock.js";
import { InvalidArgumentError } from "../core/errors.js";
import { nonNegative } from "../core/validate.js";
import { MemoryStore } from "../stores/memory-store.js";
import {
  type BanEvent,
  type BanRow,
  FAILED,
  type Failed,
  type PenaltyFailure,
  type PenaltyTable,
  type PenaltyView,
  type Reply,
  STORE_TIME,
  type Store,
} from "../stores/store.js";
import { type Decision, type DecisionPolicy, type OutcomeView, allowed, decide, decisionPolicy, rejected } from "./decision.js";
import { fallback } from "./failure-modes.js";
import { refuse, then } from "./reply.js";

export interface PenaltyBoxOptions<S extends boolean = true> extends PenaltyOptions {
  /** Name of the box; boxes of the same name on one shared store share their bans. */
  name?: string;
  /** Where the records live (default: a memory store of its own). */
  store?: Store<S>;
  /** Most keys tracked locally (default 65,536): the memory table, or a shared store's local insurance box. */
  maxKeys?: number;
  /** Default: the local clock on the memory store, the store's own clock on a store that keeps time. */
  clock?: Clock;
  shadow?: boolean;
  /** Most bans cached locally by a store that shares bans (default 100,000). */
  maxCachedBans?: number;
}

export interface FailureResult extends PenaltyStatus {
  /** This failure started a ban. */
  banned: boolean;
  /** The table was full of live entries when this key needed a place. */
  saturated: boolean;
}

/**
 * Tracks authentication failures per key (IP, IPv6 prefix, subject), on any
 * store: from the `throttleAfter`-th consecutive failure a key backs off,
 * `banFailures` failures in `banWindowMs` ban it (src/algorithms/penalty-box.ts).
 * On a shared store bans hold across instances and restarts; the store
 * spreads them (Redis: pub/sub and a local cache). While a store that can
 * fail is unavailable, checks follow its failure mode and records are kept
 * in a local box (insurance).
 */
export class PenaltyBox<S extends boolean = true> {
  readonly sync: S;
  readonly name: string;
  readonly params: PenaltyParams;
  readonly shadow: boolean;
  readonly maxKeys: number;
  readonly store: Store<S>;
  /** @internal */
  readonly table: PenaltyTable<S>;
  private readonly clock: Clock | undefined;
  private readonly policy: DecisionPolicy;
  private local: PenaltyBox<true> | undefined;
  private lastNow = -Infinity;

  constructor(o: PenaltyBoxOptions<S> = {}) {
    this.params = penaltyParams(o);
    this.shadow = o.shadow ?? false;
    this.policy = decisionPolicy(0, undefined, this.shadow);
    this.maxKeys = o.maxKeys ?? 65_536;
    this.store = o.store ?? (new MemoryStore() as unknown as Store<S>);
    this.sync = this.store.sync;
    this.clock = o.clock ?? (this.store.storeTime ? undefined : systemClock);
    this.name = o.name ?? this.store.generateName("penalty");
    this.table = this.store.penaltyTable(this.name, this.params, {
      maxKeys: this.maxKeys,
      maxCachedBans: o.maxCachedBans,
      clockInjected: o.clock !== undefined,
      ...(o.clock === undefined ? {} : { clock: o.clock }),
    });
  }

  /** Keys tracked locally. */
  get size(): number {
    return this.table.size ?? 0;
  }

  /** Live entries evicted because the local table was full. */
  get evictions(): number {
    return this.table.evictions ?? 0;
  }

  /** True while the local table is full and even its oldest entry is still live. */
  get saturated(): boolean {
    return this.table.saturatedAt?.(this.now()) ?? false;
  }

  /** Whether `key` has a record locally (a failure of a new key needs a place in the table). */
  has(key: string): boolean {
    return this.table.tracks?.(key) ?? false;
  }

  /** Removes up to `max` stale local records, oldest first, so an owner can give memory back after a flood; returns how many. */
  sweep(max: number): number {
    return this.table.sweep?.(max, this.now()) ?? 0;
  }

  /** When `key` reads as clean if nothing more happens (-Infinity when unknown or not known locally). */
  quietAt(key: string): number {
    return this.table.quietAt?.(key) ?? -Infinity;
  }

  /** Whether `key` may try now: banned, throttled (backing off) or allowed. */
  check(key: string): Reply<S, Decision> {
    if (typeof key !== "string") return refuse(this.sync, badKey());
    // Read the clock first: every operation observes it, so the clamp against
    // clock regressions does not depend on which keys happen to be tracked.
    return then(this.sync, this.table.check(key, this.tick()), (v: PenaltyView | Failed) =>
      decide(v === FAILED ? fallback(this.store.failure, 0, () => this.insurance().check(key)) : verdict(v), this.policy),
    );
  }

  status(key: string): Reply<S, PenaltyStatus> {
    if (typeof key !== "string") return refuse(this.sync, badKey());
    return then(this.sync, this.table.status(key, this.tick()), (v: PenaltyView | Failed) => (v === FAILED ? this.insurance().status(key) : strip(v)));
  }

  recordFailure(key: string): Reply<S, FailureResult> {
    if (typeof key !== "string") return refuse(this.sync, badKey());
    return then(this.sync, this.table.failure(key, this.tick()), (r: PenaltyFailure | Failed) =>
      r === FAILED ? this.insurance().recordFailure(key) : { ...strip(r), banned: r.banned, saturated: r.saturated },
    );
  }

  /** A success clears the key. */
  recordSuccess(key: string): Reply<S, void> {
    return then(this.sync, this.forget(key), () => undefined);
  }

  /** Bans `key` now (for `durationMs`, or the escalating length). Returns the ban's end on the box's clock (store time). */
  ban(key: string, durationMs?: number): Reply<S, number> {
    if (typeof key !== "string") return refuse(this.sync, badKey());
    // NaN or a negative length would poison the key's state (a NaN ban is never "over" and never "on").
    try {
      if (durationMs !== undefined) nonNegative("durationMs", durationMs);
    } catch (err) {
      return refuse(this.sync, err);
    }
    return then(this.sync, this.table.ban(key, durationMs, this.tick()), (u: number | Failed) => (u === FAILED ? this.insurance().ban(key, durationMs) : u));
  }

  /** Lifts a ban and clears the key's record (on every instance, on a shared store). */
  forget(key: string): Reply<S, boolean> {
    if (typeof key !== "string") return refuse(this.sync, badKey());
    const local = this.local?.forget(key) ?? false;
    return then(this.sync, this.table.forget(key, this.tick()), (ok: boolean | Failed) => (ok === FAILED ? local : ok || local));
  }

  /** Keys banned now with their ban end (O(n); for admin listings). */
  banned(): Reply<S, BanRow[]> {
    return then(this.sync, this.table.banned(this.tick()), (rows: BanRow[] | Failed) => rows ?? this.insurance().banned());
  }

  /** True when `key` is banned now as far as this instance knows without I/O. */
  isBanned(key: string): boolean {
    if (typeof key !== "string") return false;
    return this.table.isBanned(key, this.tick()) || (this.local?.isBanned(key) ?? false);
  }

  /** Calls `listener` on every ban and forget (on a shared store, made by any instance); returns the unsubscribe. */
  onBanEvent(listener: (e: BanEvent) => void): () => void {
    return this.table.onBanEvent(listener);
  }

  /**
   * On a store that shares bans: subscribes to them and loads the live
   * ones (false if the store did not answer within `timeoutMs`). Resolves
   * true at once on a store that does not.
   */
  start(timeoutMs?: number): Promise<boolean> {
    return this.table.start?.(timeoutMs) ?? Promise.resolve(true);
  }

  /** Ends a shared box's subscription (the store stays open). */
  close(): Promise<void> {
    return this.table.close?.() ?? Promise.resolve();
  }

  /** The box's time (clamped so it never goes back), or the store's as well as it is known locally. */
  now(): number {
    const t = this.tick();
    if (!Number.isNaN(t)) return t;
    return this.table.storeNow?.() ?? systemClock.wallNow();
  }

  /** The reading sent to the store: the clock, clamped, or STORE_TIME. */
  private tick(): number {
    const c = this.clock;
    if (c === undefined) return STORE_TIME;
    const t = c.now();
    if (t > this.lastNow) this.lastNow = t;
    return this.lastNow;
  }

  /** The local box recording while the store is unavailable. */
  private insurance(): PenaltyBox<true> {
    this.local ??= new PenaltyBox({
      ...this.params,
      name: `${this.name}:penalty`,
      store: this.store.failure?.insurance ?? new MemoryStore(),
      maxKeys: this.maxKeys,
      clock: this.clock ?? systemClock,
      shadow: false,
    });
    return this.local;
  }
}

/** Banned, backing off, or clean, as of the store's time of the answer. */
function verdict(v: PenaltyView): OutcomeView {
  if (v.bannedUntil > v.now) return rejected("banned", msUntil(v.now, v.bannedUntil));
  if (v.throttledUntil > v.now) return rejected("throttled", msUntil(v.now, v.throttledUntil));
  return allowed(0);
}

function strip(st: PenaltyStatus): PenaltyStatus {
  return { streak: st.streak, throttledUntil: st.throttledUntil, bannedUntil: st.bannedUntil, bans: st.bans };
}

/** An unknown key type must not read as "clean" (that would fail open). */
function badKey(): InvalidArgumentError {
  return new InvalidArgumentError("key", "must be a string");
}
