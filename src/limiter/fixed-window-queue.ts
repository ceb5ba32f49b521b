import type { FixedWindowParams } from "../algorithms/fixed-window.js";
import { Outcome, msUntil } from "../algorithms/outcome.js";
import type { Clock, TimerHandle } from "../core/clock.js";
import { AcquireAbortedError } from "../core/errors.js";
import type { QueueOrder } from "./limit-spec.js";
import { type KeyQueue, type QueueBounds, type Waiter, settle, windowsBehind } from "./queue-retry.js";

/** Most keys with waiters at once, so a flood of distinct keys cannot grow the queues without bound. */
export const MAX_QUEUED_KEYS = 10_000;

export interface QueueHost {
  now(): number;
  /** Runs the fixed-window transition for `key` (writing only when it allows). */
  consume(key: string, cost: number, now: number): Outcome;
}

/**
 * The FIFO queue in front of a fixed window (the semantics of .NET's
 * FixedWindowRateLimiter). When a key's window is exhausted, up to
 * `queueLimit` permits wait, in order, and are admitted when the next window
 * opens. Oldest first, a newcomer never jumps a queued waiter, even when a
 * permit is free. In newest_first order the newest caller is served first
 * (so a newcomer takes a free permit at once) and a full queue drops its
 * oldest waiter to make room.
 *
 * Windows are aligned on the clock, so every key's next window opens at the
 * same instant: one timer per limit serves every waiting key.
 */
export class FixedWindowQueue {
  private readonly queues = new Map<string, KeyQueue>();
  private timer: TimerHandle | undefined;
  private disposed = false;
  private readonly bounds: QueueBounds;

  constructor(
    private readonly opts: { limit: number; order: QueueOrder },
    private readonly params: FixedWindowParams,
    private readonly clock: Clock,
    private readonly host: QueueHost,
  ) {
    this.bounds = { permitLimit: params.permitLimit, queueLimit: opts.limit, order: opts.order };
  }

  hasWaiters(key: string): boolean {
    return this.queues.has(key);
  }

  /** Admits the waiters of `key` that fit now (the timer does the same at each window start). */
  drain(key: string, now: number): void {
    this.drainKey(key, now);
  }

  /** Total permits waiting across keys. */
  get waiting(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.permits;
    return n;
  }

  /**
   * Answer for an immediate check on a key that has waiters. Oldest first,
   * it may not jump them. Newest first (as .NET's NewestFirst), the newcomer
   * is the newest of all, so it takes a free permit if there is one.
   */
  behind(key: string, cost: number, now: number): Outcome {
    this.drainKey(key, now);
    const q = this.queues.get(key);
    if (q === undefined) return this.host.consume(key, cost, now);
    if (cost > this.params.permitLimit) return this.insufficient(now);
    if (this.opts.order === "newest_first") {
      const out = this.host.consume(key, cost, now);
      if (out.allowed) return out;
    }
    return this.rejectBehind(q, cost, now, "rate_limited", false);
  }

  /** What `behind` would answer, without admitting anyone; `free` is the window's own answer. */
  peekBehind(key: string, cost: number, now: number, free: Outcome): Outcome {
    const q = this.queues.get(key);
    if (q === undefined) return free;
    if (cost > this.params.permitLimit) return this.insufficient(now);
    if (this.opts.order === "newest_first" && free.allowed) return free;
    return this.rejectBehind(q, cost, now, "rate_limited", false);
  }

  acquire(key: string, cost: number, signal: AbortSignal | undefined): Promise<Outcome> {
    if (this.disposed) return Promise.reject(new AcquireAbortedError("limiter disposed", "disposed"));
    if (signal?.aborted) return Promise.reject(new AcquireAbortedError("acquire aborted before it started"));
    const now = this.host.now();
    this.drainKey(key, now);
    let q = this.queues.get(key);
    // A cost no window can hold is answered at once and never queued: at the
    // head of the queue it would block every waiter behind it forever.
    if (q !== undefined && cost > this.params.permitLimit) return Promise.resolve(this.insufficient(now));
    if (q !== undefined && this.opts.order === "newest_first") {
      // The newcomer is served first: it passes at once if the window has room.
      const out = this.host.consume(key, cost, now);
      if (out.allowed) return Promise.resolve(copy(out));
    }
    if (q === undefined) {
      const out = this.host.consume(key, cost, now);
      if (out.allowed || out.reason !== "rate_limited") return Promise.resolve(copy(out));
      if (cost > this.opts.limit || this.queues.size >= MAX_QUEUED_KEYS) {
        return Promise.resolve(this.rejectBehind(undefined, cost, now, "queue_full", false));
      }
      q = { waiters: [], permits: 0 };
      this.queues.set(key, q);
    }
    if (q.permits + cost > this.opts.limit) {
      if (this.opts.order === "oldest_first" || cost > this.opts.limit) {
        return Promise.resolve(this.rejectBehind(q, cost, now, "queue_full", cost <= this.opts.limit));
      }
      // newest_first: the oldest waiters give way to the newcomer.
      while (q.waiters.length > 0 && q.permits + cost > this.opts.limit) {
        const dropped = q.waiters.shift()!;
        q.permits -= dropped.cost;
        settle(dropped);
        dropped.resolve(this.rejectBehind(q, dropped.cost, now, "queue_full", false));
      }
    }
    return new Promise<Outcome>((resolve, reject) => {
      const w: Waiter = { cost, resolve, reject, signal, onAbort: undefined };
      if (signal) {
        w.onAbort = () => this.cancel(key, w);
        signal.addEventListener("abort", w.onAbort, { once: true });
      }
      q.waiters.push(w);
      q.permits += cost;
      this.schedule(now);
    });
  }

  dispose(): void {
    this.disposed = true;
    this.timer?.cancel();
    this.timer = undefined;
    for (const q of this.queues.values()) {
      for (const w of q.waiters) {
        settle(w);
        w.reject(new AcquireAbortedError("limiter disposed", "disposed"));
      }
    }
    this.queues.clear();
  }

  private cancel(key: string, w: Waiter): void {
    const q = this.queues.get(key);
    if (q === undefined) return;
    const i = q.waiters.indexOf(w);
    if (i < 0) return;
    q.waiters.splice(i, 1);
    q.permits -= w.cost;
    if (q.waiters.length === 0) this.queues.delete(key);
    settle(w);
    w.reject(new AcquireAbortedError("acquire aborted while queued"));
  }

  /** Answer for a cost no window can hold: never retry; the reset is the current window's end. */
  private insufficient(now: number): Outcome {
    const w = this.params.windowMs;
    const out = new Outcome();
    out.reject("insufficient_capacity", 0, Math.floor(now / w) * w + w - now, 0);
    return out;
  }

  /**
   * Rejection for a call that cannot pass the waiters of `q` now. Its
   * Retry-After is the earliest wait after which the same call succeeds,
   * assuming no newcomers: the end of this window plus the windows the
   * queue ahead of it still takes (see windowsBehind).
   */
  private rejectBehind(q: KeyQueue | undefined, cost: number, now: number, reason: "rate_limited" | "queue_full", mayQueue: boolean): Outcome {
    const w = this.params.windowMs;
    const end = Math.floor(now / w) * w + w;
    const windows = windowsBehind(q, cost, mayQueue, this.bounds);
    const out = new Outcome();
    out.reject(reason, 0, end - now, msUntil(now, end) + windows * w);
    return out;
  }

  private drainKey(key: string, now: number): void {
    const q = this.queues.get(key);
    if (q === undefined) return;
    while (q.waiters.length > 0) {
      const newest = this.opts.order === "newest_first";
      const w = newest ? q.waiters[q.waiters.length - 1]! : q.waiters[0]!;
      const out = this.host.consume(key, w.cost, now);
      if (!out.allowed) break;
      if (newest) q.waiters.pop();
      else q.waiters.shift();
      q.permits -= w.cost;
      settle(w);
      w.resolve(copy(out));
    }
    if (q.waiters.length === 0) this.queues.delete(key);
  }

  private schedule(now: number): void {
    if (this.timer !== undefined || this.disposed) return;
    const w = this.params.windowMs;
    const next = Math.floor(now / w) * w + w;
    // The delay is measured on the timer's own clock: after a regression it
    // reads earlier than `now` (the limit's clamped time), and aiming from
    // `now` would fire early again and again until the clock caught up.
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      const t = this.host.now();
      for (const key of [...this.queues.keys()]) this.drainKey(key, t);
      if (this.queues.size > 0) this.schedule(t);
    }, next - Math.min(now, this.clock.now()));
  }
}

function copy(o: Outcome): Outcome {
  const c = new Outcome();
  c.allowed = o.allowed;
  c.remaining = o.remaining;
  c.resetMs = o.resetMs;
  c.retryAfterMs = o.retryAfterMs;
  c.reason = o.reason;
  return c;
}
