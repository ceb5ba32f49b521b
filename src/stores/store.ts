/** The contract between the limiters and the stores their state lives in. */
import type { Clock } from "../core/clock.js";
import type { LimitSpec } from "../algorithms/limit-spec.js";
import type { Outcome } from "../algorithms/outcome.js";
import type { PenaltyParams, PenaltyStatus } from "../algorithms/penalty-box.js";

/**
 * The contract between the limiters and the places their state lives.
 *
 * A store knows nothing of limiters. It offers, per limit, a table whose
 * operations atomically apply one algorithm's transition to one key's
 * state and answer the outcome: rate checks (`RateTable`), concurrency
 * leases (`LeaseTable`) and the penalty box (`PenaltyTable`), plus one
 * all-or-nothing apply over several rate tables (`rateAll`). The limiters
 * (src/limiter) are written once over this interface: they validate input,
 * read their clock, build the Decision and apply the failure modes.
 *
 * `S` says how a store answers: `true`, synchronously (the memory store:
 * every method returns its value); `false`, asynchronously (Redis, the
 * message store: every method returns a Promise). `Reply<S, T>` is that
 * return type. A limiter over a sync store has the sync surface
 * (`check()` returns a Decision), over an async store the async one.
 *
 * Time: every operation takes `now`, the limit's clock reading in ms. A
 * store with a clock of its own (`storeTime`: Redis TIME, the message
 * store's host) accepts `STORE_TIME` instead and then reads it; the memory
 * store always receives a number.
 *
 * Failure: a store that can fail (network, another process) answers
 * `FAILED` instead of throwing, switches itself to its failure mode and
 * exposes it as `failure`; it never decides what a failure means. The
 * limiters do (insurance, open, closed). A store that cannot fail has
 * `failure === undefined` and never answers FAILED.
 *
 * Writing a store: implement this interface, then run the conformance
 * suite (test/conformance/suite.ts) and the model properties against it;
 * see docs/library.md, "Writing your own store".
 */
export interface Store<S extends boolean = boolean> {
  /** true: every method answers at once; false: every method answers a Promise. */
  readonly sync: S;
  /** A short name for logs and metrics ("memory", "redis", "message"...). */
  readonly kind: string;
  /** True when the store reads its own clock for operations sent `STORE_TIME`. */
  readonly storeTime: boolean;
  /** The failure mode and insurance state of a store that can fail; undefined for one that cannot. */
  readonly failure: StoreFailure | undefined;

  /** A limit name not used in this store instance yet. */
  generateName(prefix: string): string;

  /** The rate table of limit `name`, created on first use (a second call with the same name shares the state). */
  rateTable(name: string, spec: LimitSpec, o?: TableOptions): RateTable<S>;
  /**
   * Applies `ops` in order as one atomic step: either every op consumes,
   * or, at the first rejection of an op that is not `shadow`, none does.
   * Outcomes up to and including that rejection (the rest are not
   * decided). Every op's table must come from this store.
   */
  rateAll(ops: readonly RateOp<S>[]): Reply<S, Outcome[] | Failed>;

  /**
   * Optional, native form of `admitAll` (src/stores/admit-all.ts): takes
   * `ops.leases` then charges `ops.rates` as one atomic step, all or
   * nothing. A store without it gets the generic form (the operations one
   * by one, undoing what was taken when one refuses).
   */
  admitAll?(ops: AdmitOps<S>): Reply<S, AdmitAnswer | Failed>;
  /** Optional, native form of `releaseAll`: ends several leases in one step. */
  releaseAll?(ops: readonly LeaseRelease<S>[]): Reply<S, boolean[] | Failed>;

  /** The lease table of concurrency limit `name`. */
  leaseTable(name: string, o: LeaseTableOptions): LeaseTable<S>;
  /** The penalty table of box `name`. */
  penaltyTable(name: string, params: PenaltyParams, o?: PenaltyTableOptions): PenaltyTable<S>;
}

export type SyncStore = Store<true>;
export type AsyncStore = Store<false>;

/** What a store of kind `S` returns for a value `T`. */
export type Reply<S extends boolean, T> = S extends true ? T : Promise<T>;

/** The answer of a store that could not reach its state (it never throws for that). */
export const FAILED = undefined;
export type Failed = typeof FAILED;

/** Sent as `now` to a store with `storeTime`: read your own clock. */
export const STORE_TIME = Number.NaN;

/** What decides while a store that can fail is unavailable. */
export type FailureMode = "insurance" | "open" | "closed";

/** What a store that can fail tells the limiters about itself. */
export interface StoreFailure {
  readonly failureMode: FailureMode;
  /** Instances sharing the store; insurance limits are the real ones divided by it. */
  readonly expectedInstances: number;
  /** Retry-After of a `store_unavailable` rejection (how often the store probes its backend). */
  readonly probeIntervalMs: number;
  /** Local state of the insurance limits (bounded, shared by the store's limits). */
  readonly insurance: SyncStore;
  /** Counts a decision answered by the failure mode. */
  countFallback(): void;
}

export interface TableOptions {
  /** The limit runs on an injected clock (tests): its milliseconds are not real ones. */
  readonly clockInjected?: boolean;
  /** Shortest lifetime of a key's state in stores that expire keys (Redis). */
  readonly keyTtlFloorMs?: number;
  /** The limit's injected clock, for work a store does on its own (writing back after an outage). */
  readonly clock?: Clock;
}

/** Per-limit rate state: one algorithm (spec) applied to a key's state. */
export interface RateTable<S extends boolean = boolean> {
  readonly name: string;
  readonly spec: LimitSpec;
  /**
   * Runs the algorithm's consume on `key` (writing only when it allows).
   * A sync store may write into `out` and return it; an async one answers
   * an Outcome of its own.
   */
  consume(key: string, cost: number, now: number, out: Outcome): Reply<S, Outcome | Failed>;
  /** The answer consume would give, changing nothing. */
  peek(key: string, cost: number, now: number, out: Outcome): Reply<S, Outcome | Failed>;
  /** Forgets `key` (it reads as fresh). */
  delete(key: string): Reply<S, void>;
  /** Keys tracked now, where the store can tell at no cost (the memory store). */
  readonly size?: number;
}

export interface RateOp<S extends boolean = boolean> {
  readonly table: RateTable<S>;
  readonly key: string;
  readonly cost: number;
  readonly now: number;
  /** A shadow limit's rejection does not stop the others (and consumes nothing). */
  readonly shadow: boolean;
}

export interface LeaseTableOptions extends TableOptions {
  /** Most leases per key. */
  readonly limit: number;
  /** A lease not renewed within this many ms ends on its own (Infinity: only release ends it). */
  readonly ttlMs: number;
}

/** An acquire's answer: the lease taken, or how long until one frees. */
export interface LeaseGrant {
  /** Leases held after the call, or -1 when all slots were taken. */
  readonly held: number;
  /** The lease's id (when taken). */
  readonly id: LeaseId;
  /** When full: ms until the earliest lease expires (0 when none expires). */
  readonly retryAfterMs: number;
}

export type LeaseId = number | string;

/** A key of a lease table at a clock reading: what every lease operation of a batch names. */
export interface LeaseKeyAt<S extends boolean = boolean> {
  readonly table: LeaseTable<S>;
  readonly key: string;
  readonly now: number;
}

/** One lease to take in an `admitAll`. */
export interface LeaseOp<S extends boolean = boolean> extends LeaseKeyAt<S> {
  /** A shadow limit's refusal does not stop the others (and takes nothing). */
  readonly shadow: boolean;
}

/** Leases and rate checks of one admission (a new connection: its caps and its rates). */
export interface AdmitOps<S extends boolean = boolean> {
  readonly leases: readonly LeaseOp<S>[];
  readonly rates: readonly RateOp<S>[];
}

/**
 * What an `admitAll` decided, in order, leases first: answers up to and
 * including the first refusal of an op that is not `shadow` (the rest are
 * not decided); after such a refusal nothing was taken or charged.
 */
export interface AdmitAnswer {
  readonly leases: LeaseGrant[];
  readonly rates: Outcome[];
}

/** One lease to end in a `releaseAll`. */
export interface LeaseRelease<S extends boolean = boolean> extends LeaseKeyAt<S> {
  readonly id: LeaseId;
}

/** Per-limit concurrency leases. */
export interface LeaseTable<S extends boolean = boolean> {
  readonly name: string;
  acquire(key: string, now: number): Reply<S, LeaseGrant | Failed>;
  /** Ends a lease; false when it was not held (release is idempotent). */
  release(key: string, id: LeaseId, now: number): Reply<S, boolean | Failed>;
  /** Pushes a lease's expiry to now + ttl; false when it is not held any more. */
  renew(key: string, id: LeaseId, now: number): Reply<S, boolean | Failed>;
  /** Leases held by `key` now. */
  held(key: string, now: number): Reply<S, number | Failed>;
  delete(key: string): Reply<S, void>;
}

export interface PenaltyTableOptions extends TableOptions {
  /** Most keys kept locally (the memory table; Redis's insurance box). */
  readonly maxKeys?: number;
  /** Most bans cached locally (stores that share bans). */
  readonly maxCachedBans?: number;
}

/** A key's penalty record as of `now`, the store's time of the answer. */
export interface PenaltyView extends PenaltyStatus {
  readonly now: number;
}

export interface PenaltyFailure extends PenaltyView {
  /** This failure started a ban. */
  readonly banned: boolean;
  /** The table was full of live entries when this key needed a place. */
  readonly saturated: boolean;
}

export interface BanRow {
  readonly key: string;
  /** End of the ban in store time. */
  readonly bannedUntil: number;
  /** Bans so far, where the store keeps the count with the listing (memory). */
  readonly bans?: number;
}

/** A ban placed or lifted, wherever it was (this instance, or another one sharing the store). */
export type BanEvent = { readonly kind: "ban"; readonly key: string; readonly until: number } | { readonly kind: "forget"; readonly key: string };

/** Per-box penalty state: failure streaks, back-off and bans. */
export interface PenaltyTable<S extends boolean = boolean> {
  readonly name: string;
  readonly params: PenaltyParams;
  /**
   * What a check needs (ban and back-off ends), possibly from local caches
   * (a shared ban list): the streak and ban count may read 0.
   */
  check(key: string, now: number): Reply<S, PenaltyView | Failed>;
  /** The key's full record. */
  status(key: string, now: number): Reply<S, PenaltyView | Failed>;
  failure(key: string, now: number): Reply<S, PenaltyFailure | Failed>;
  /** Bans `key` for `durationMs` (or the escalating length); answers the ban's end in store time. */
  ban(key: string, durationMs: number | undefined, now: number): Reply<S, number | Failed>;
  /** Lifts a ban and clears the key's record; true if there was one. */
  forget(key: string, now: number): Reply<S, boolean | Failed>;
  /** Live bans. */
  banned(now: number): Reply<S, BanRow[] | Failed>;
  /** True when `key` is banned now as far as the store knows without I/O. */
  isBanned(key: string, now: number): boolean;
  /** Calls `listener` on every ban and forget; returns the unsubscribe. */
  onBanEvent(listener: (e: BanEvent) => void): () => void;
  /**
   * Stores that share bans: subscribes to their broadcast and loads the
   * live ones; resolves false when the backend did not answer in time.
   */
  start?(timeoutMs?: number): Promise<boolean>;
  /** Stores that share bans: ends the subscription (the store stays open). */
  close?(): Promise<void>;
  /** The store's time now, where the store keeps its own (`storeTime`), as well as it knows it without I/O. */
  storeNow?(): number;
  /** Keys tracked locally, where the store can tell at no cost. */
  readonly size?: number;
  /** Live entries evicted because the local table was full. */
  readonly evictions?: number;
  /** True while the local table is full of live entries. */
  saturatedAt?(now: number): boolean;
  /** When `key` reads as clean if nothing more happens (local tables). */
  quietAt?(key: string): number;
  /** Whether `key` has a record locally, so a failure of it needs no new place (local tables). */
  tracks?(key: string): boolean;
  /** Removes up to `max` stale records, oldest first, so memory comes back after a flood; answers how many (local tables). */
  sweep?(max: number, now: number): number;
}
