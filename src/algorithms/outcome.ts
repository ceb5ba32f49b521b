/**
 * What one transition answers. Algorithms write into a reusable Outcome
 * instead of allocating, so a check on the memory store allocates only the
 * Decision it returns.
 */
export type RejectReason =
  /** Over the limit now; the same check succeeds after `retryAfterMs`. */
  | "rate_limited"
  /** The cost can never fit (cost > burst, permits > permitLimit): do not retry. */
  | "insufficient_capacity"
  /** The FIFO queue in front of the window is full. */
  | "queue_full"
  /** All concurrency slots of the key are held. */
  | "concurrency_limit"
  /** The penalty box asks the key to back off. */
  | "throttled"
  /** The key is banned. */
  | "banned"
  /** The shared store is unreachable and its failure mode is "closed": retry after `retryAfterMs`. */
  | "store_unavailable";

export class Outcome {
  allowed = false;
  remaining = 0;
  resetMs = 0;
  retryAfterMs = 0;
  reason: RejectReason | undefined = undefined;

  allow(remaining: number, resetMs: number): void {
    this.allowed = true;
    this.remaining = remaining;
    this.resetMs = resetMs;
    this.retryAfterMs = 0;
    this.reason = undefined;
  }

  reject(reason: RejectReason, remaining: number, resetMs: number, retryAfterMs: number): void {
    this.allowed = false;
    this.remaining = remaining;
    this.resetMs = resetMs;
    this.retryAfterMs = retryAfterMs;
    this.reason = reason;
  }
}

/**
 * Whole milliseconds from `now` until `at`, rounded up so that a caller who
 * waits exactly this long is at or past `at` (floating-point subtraction can
 * round below the true difference; the guard corrects that).
 */
export function msUntil(now: number, at: number): number {
  if (!(at > now)) return 0;
  let r = Math.ceil(at - now);
  if (now + r < at) r += 1;
  return r;
}
