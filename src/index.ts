/**
 * Portcullis, the library: keyed rate limiters over the memory store.
 * This entry loads the engine alone (no gateway dependency: test/packaging
 * checks it); Redis is `portcullis/redis`, the gateway `portcullis/gateway`,
 * the features `portcullis/http`, `/shaping`, `/probe`, `/permissions`, `/udp`,
 * and the guard for your own net/tls servers `portcullis/server-guard`.
 */
export { type Clock, type TimerHandle, ManualClock, TurnCachedClock, systemClock } from "./core/clock.js";
export { type Rng, seededRng, systemRng } from "./core/random.js";
export { PortcullisError, InvalidArgumentError, AcquireAbortedError } from "./core/errors.js";

export { Outcome, type RejectReason } from "./algorithms/outcome.js";
export type { RateAlgorithm } from "./algorithms/rate-algorithm.js";
export { gcra, gcraParams, type GcraParams, type GcraOptions } from "./algorithms/gcra.js";
export { fixedWindow, fixedWindowParams, type FixedWindowParams } from "./algorithms/fixed-window.js";
export { slidingWindow, slidingWindowParams, type SlidingWindowParams } from "./algorithms/sliding-window.js";
export * as concurrency from "./algorithms/concurrency.js";
export * as penalty from "./algorithms/penalty-box.js";
export { type PenaltyParams, type PenaltyOptions, penaltyParams, backoffMs, banLengthMs } from "./algorithms/penalty-box.js";

export { MemoryStore, type MemoryStoreOptions } from "./stores/memory-store.js";
export { MemoryTable, type MemoryTableOptions } from "./stores/memory-table.js";
export {
  type Store,
  type SyncStore,
  type AsyncStore,
  type Reply,
  type Failed,
  type FailureMode,
  type StoreFailure,
  type TableOptions,
  type RateTable,
  type RateOp,
  type LeaseTable,
  type LeaseTableOptions,
  type LeaseGrant,
  type LeaseId,
  type LeaseOp,
  type LeaseRelease,
  type AdmitOps,
  type AdmitAnswer,
  type PenaltyTable,
  type PenaltyTableOptions,
  type PenaltyView,
  type PenaltyFailure,
  type BanRow,
  type BanEvent,
  FAILED,
  STORE_TIME,
} from "./stores/store.js";
export { admitAll, releaseAll } from "./stores/admit-all.js";

export { Decision, type DecisionPolicy, type OutcomeView, decide, decisionPolicy } from "./limiter/decision.js";
export type { Limiter, AsyncLimiter, AnyLimiter, AcquireOptions, LimiterInfo } from "./limiter/types.js";
export { type RateLimitOptions, type LimitSpec, type QueueOrder, limitSpec } from "./algorithms/limit-spec.js";
export { RateLimiter, type RateLimiterOptions, type MemoryLimiterOptions } from "./limiter/rate-limiter.js";
export { createLimiter } from "./limiter/create-limiter.js";
export { LimiterSet, type CompositeDecision } from "./limiter/limiter-set.js";
export {
  ConcurrencyLimiter,
  type ConcurrencyLimiterOptions,
  type ConcurrencyResult,
  type Lease,
} from "./limiter/concurrency-limiter.js";
export { PenaltyBox, type PenaltyBoxOptions, type FailureResult } from "./limiter/penalty-box.js";

export { normalizeIp, ipKey, ipFamily, type IpKeyOptions } from "./net/ip-key.js";
