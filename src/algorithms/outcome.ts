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

/**
 * Derives `remaining` from a number the algorithm left (`arg`) and its
 * parameters. A plain function of its arguments: it must not read any other
 * state, since it may run after the transition that deferred it.
 */
export type RemainingOf = (arg: number, params: unknown) => number;

export class Outcome {
  allowed = false;
  resetMs = 0;
  retryAfterMs = 0;
  reason: RejectReason | undefined = undefined;
  private rem = 0;
  // A deferred `remaining`: callers that only ask allowed-or-not (allow())
  // never pay for the division it may take. Cleared once derived.
  private remOf: RemainingOf | undefined = undefined;
  private remArg = 0;
  private remParams: unknown = undefined;

  get remaining(): number {
    if (this.remOf !== undefined) {
      this.rem = this.remOf(this.remArg, this.remParams);
      this.remOf = undefined;
      this.remParams = undefined;
    }
    return this.rem;
  }

  set remaining(v: number) {
    this.rem = v;
    this.remOf = undefined;
    this.remParams = undefined;
  }

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

  /** Like `allow`, with `remaining` derived on first read as `remainingOf(arg, params)`. */
  allowDeferred(remainingOf: RemainingOf, arg: number, params: unknown, resetMs: number): void {
    this.allowed = true;
    this.defer(remainingOf, arg, params);
    this.resetMs = resetMs;
    this.retryAfterMs = 0;
    this.reason = undefined;
  }

  /** Like `reject`, with `remaining` derived on first read as `remainingOf(arg, params)`. */
  rejectDeferred(reason: RejectReason, remainingOf: RemainingOf, arg: number, params: unknown, resetMs: number, retryAfterMs: number): void {
    this.allowed = false;
    this.defer(remainingOf, arg, params);
    this.resetMs = resetMs;
    this.retryAfterMs = retryAfterMs;
    this.reason = reason;
  }

  private defer(remainingOf: RemainingOf, arg: number, params: unknown): void {
    this.remOf = remainingOf;
    this.remArg = arg;
    this.remParams = params;
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
