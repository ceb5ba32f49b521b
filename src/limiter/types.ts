/** The types every limiter shares: acquire options and the common description of a limit. */
import type { Decision } from "./decision.js";

export interface AcquireOptions {
  /** Cancels a queued acquisition; the caller leaves the queue and the promise rejects. */
  signal?: AbortSignal;
  /** Called once when the caller takes a place in the queue (never for an answer given at once, such as a full queue). */
  onQueued?: () => void;
}

/** Common surface of every rate limit, whatever its store. */
export interface LimiterInfo {
  readonly name: string;
  readonly algorithm: string;
  readonly limit: number;
  readonly shadow: boolean;
}

/** A limit on a synchronous store (memory): checks answer at once. */
export interface Limiter extends LimiterInfo {
  readonly sync: true;
  check(key: string, cost?: number): Decision;
  /** The same check answering only allowed or not; allocates nothing. */
  allow(key: string, cost?: number): boolean;
  peek(key: string, cost?: number): Decision;
  reset(key: string): void;
  /** Like check, but may wait in the limit's FIFO queue (fixed window with queueLimit > 0). */
  acquire(key: string, cost?: number, options?: AcquireOptions): Promise<Decision>;
  /** Fails every queued waiter and stops the limit's timer. */
  dispose(): void;
}

/** A limit on a store that needs I/O (Redis): the same operations, answered asynchronously. */
export interface AsyncLimiter extends LimiterInfo {
  readonly sync: false;
  check(key: string, cost?: number): Promise<Decision>;
  peek(key: string, cost?: number): Promise<Decision>;
  reset(key: string): Promise<void>;
  acquire(key: string, cost?: number, options?: AcquireOptions): Promise<Decision>;
  dispose(): void;
}

export type AnyLimiter = Limiter | AsyncLimiter;
