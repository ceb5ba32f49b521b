import type { FixedWindowParams } from "../../algorithms/fixed-window.js";
import { Outcome, msUntil } from "../../algorithms/outcome.js";
import type { Clock, TimerHandle } from "../../core/clock.js";
import { AcquireAbortedError } from "../../core/errors.js";
import type { QueueOrder } from "../../limiter/limit-spec.js";
import { type KeyQueue as SharedKeyQueue, type QueueBounds, type Waiter, settle, windowsBehind } from "../../limiter/queue-retry.js";

export interface AsyncQueueHost {
  /** The limit's time: what it sends Redis (an injected clock clamped so it never goes back), or the local clock. */
  now(): number;
  /** Runs the fixed-window transition on the shared store (consuming only when it allows). */
  consume(key: string, cost: number): Promise<Outcome>;
  /** The fixed window's own answer for `cost`, consuming nothing. */
  peek(key: string, cost: number): Promise<Outcome>;
}

interface KeyQueue extends SharedKeyQueue {
  /** When the window that rejected the head ends, on the limit's time (host.now()). */
  windowEnd: number;
  timer: TimerHandle | undefined;
  draining: boolean;
}

/** Most keys with a queue at once; a newcomer beyond it is answered queue_full. */
const MAX_QUEUED_KEYS = 10_000;

/**
 * The FIFO queue of a fixed window whose counts live in Redis. Waiting
 * happens in the caller's process (the semantics of FixedWindowQueue: FIFO
 * or newest first, up to `limit` permits wait per key in this process), but
 * every admission is a consume in Redis, so admissions across instances
 * never exceed permitLimit per window. Oldest first, a newcomer never jumps
 * a waiter; newest first, a newcomer is the newest caller and takes a free
 * permit at once. When a window opens, the head waiters of a key are
 * admitted one by one until Redis rejects; the rejection's resetMs says when
 * to try again, which also absorbs any skew between the local clock and
 * Redis TIME.
 */
export class AsyncWindowQueue {
  private readonly queues = new Map<string, KeyQueue>();
  private disposed = false;
  /** Redis calls the queue has in flight (drains and newcomers), for `idle`. */
  private inFlight = 0;
  private readonly bounds: QueueBounds;

  constructor(
    private readonly opts: { limit: number; order: QueueOrder },
    private readonly params: FixedWindowParams,
    private readonly clock: Clock,
    private readonly host: AsyncQueueHost,
  ) {
    this.bounds = { permitLimit: params.permitLimit, queueLimit: opts.limit, order: opts.order };
  }

  hasWaiters(key: string): boolean {
    return this.queues.has(key);
  }

  /** True when nothing of this queue waits on Redis (no drain, no newcomer's call in flight). */
  get idle(): boolean {
    return this.inFlight === 0;
  }

  /**
   * True when a call on `key` is answered by the queue alone, without asking
   * Redis: oldest first a newcomer may not pass the waiters, and a cost no
   * window can hold is insufficient capacity.
   */
  blocks(key: string, cost: number): boolean {
    return this.queues.has(key) && (this.opts.order === "oldest_first" || cost > this.params.permitLimit);
  }

  /** Answer for an immediate check on a key with waiters here. */
  async behind(key: string, cost: number): Promise<Outcome> {
    if (this.blocks(key, cost) || !this.queues.has(key)) return this.answer(key, cost, undefined) ?? this.call(() => this.host.consume(key, cost));
    return this.answer(key, cost, await this.call(() => this.host.consume(key, cost)))!;
  }

  /** What `behind` would answer, consuming nothing. */
  async peekBehind(key: string, cost: number): Promise<Outcome> {
    if (this.blocks(key, cost) || !this.queues.has(key)) return this.answer(key, cost, undefined) ?? this.call(() => this.host.peek(key, cost));
    return this.answer(key, cost, await this.call(() => this.host.peek(key, cost)))!;
  }

  /**
   * The queue's answer for a call on `key`, given the window's own answer
   * `free` (undefined when Redis was not asked because the queue blocks):
   * `free` itself when nobody waits or a newest-first newcomer fits, else
   * the rejection behind the waiters.
   */
  answer(key: string, cost: number, free: Outcome | undefined): Outcome | undefined {
    const q = this.queues.get(key);
    if (q === undefined) return free;
    const now = this.host.now();
    if (cost > this.params.permitLimit) return this.insufficient(q, now);
    if (free !== undefined && (free.allowed || free.reason !== "rate_limited")) return free;
    return this.rejectBehind(q, q.windowEnd, cost, now, "rate_limited", false);
  }

  async acquire(key: string, cost: number, signal: AbortSignal | undefined): Promise<Outcome> {
    if (this.disposed) throw new AcquireAbortedError("limiter disposed", "disposed");
    if (signal?.aborted) throw new AcquireAbortedError("acquire aborted before it started");
    let q = this.queues.get(key);
    // A cost no window can hold is answered at once and never queued: at the
    // head of the queue it would block every waiter behind it forever.
    if (q !== undefined && cost > this.params.permitLimit) return this.insufficient(q, this.host.now());
    // The window's end is measured from when Redis was asked: the reply may come after the clock moved on.
    let end = this.host.now();
    if (q === undefined || this.opts.order === "newest_first") {
      // No queue yet, or newest first (the newcomer is served first): the window decides.
      const out = await this.call(() => this.host.consume(key, cost));
      if (out.allowed || out.reason !== "rate_limited") return out;
      if (this.disposed) throw new AcquireAbortedError("limiter disposed", "disposed");
      if (signal?.aborted) throw new AcquireAbortedError("acquire aborted before it started");
      end += out.resetMs;
      q = this.queues.get(key);
    }
    const now = this.host.now();
    if (q === undefined) {
      if (cost > this.opts.limit || this.queues.size >= MAX_QUEUED_KEYS) return this.rejectBehind(undefined, end, cost, now, "queue_full", false);
      q = { waiters: [], permits: 0, windowEnd: end, timer: undefined, draining: false };
      this.queues.set(key, q);
    }
    const queue = q;
    if (queue.permits + cost > this.opts.limit) {
      if (this.opts.order === "oldest_first" || cost > this.opts.limit) {
        return this.rejectBehind(queue, queue.windowEnd, cost, now, "queue_full", cost <= this.opts.limit);
      }
      // newest_first: the oldest waiters give way to the newcomer.
      while (queue.waiters.length > 0 && queue.permits + cost > this.opts.limit) {
        const dropped = queue.waiters.shift()!;
        queue.permits -= dropped.cost;
        settle(dropped);
        dropped.resolve(this.rejectBehind(queue, queue.windowEnd, dropped.cost, now, "queue_full", false));
      }
    }
    return new Promise<Outcome>((resolve, reject) => {
      const w: Waiter = { cost, resolve, reject, signal, onAbort: undefined };
      if (signal) {
        w.onAbort = () => this.cancel(key, w);
        signal.addEventListener("abort", w.onAbort, { once: true });
      }
      queue.waiters.push(w);
      queue.permits += cost;
      this.schedule(key, queue);
    });
  }

  dispose(): void {
    this.disposed = true;
    for (const q of this.queues.values()) {
      q.timer?.cancel();
      for (const w of q.waiters) {
        settle(w);
        w.reject(new AcquireAbortedError("limiter disposed", "disposed"));
      }
    }
    this.queues.clear();
  }

  private async call(fn: () => Promise<Outcome>): Promise<Outcome> {
    this.inFlight++;
    try {
      return await fn();
    } finally {
      this.inFlight--;
    }
  }

  private cancel(key: string, w: Waiter): void {
    const q = this.queues.get(key);
    if (q === undefined) return;
    const i = q.waiters.indexOf(w);
    if (i < 0) return;
    q.waiters.splice(i, 1);
    q.permits -= w.cost;
    if (q.waiters.length === 0 && !q.draining) this.drop(key, q);
    settle(w);
    w.reject(new AcquireAbortedError("acquire aborted while queued"));
  }

  private drop(key: string, q: KeyQueue): void {
    q.timer?.cancel();
    q.timer = undefined;
    if (this.queues.get(key) === q) this.queues.delete(key);
  }

  private schedule(key: string, q: KeyQueue): void {
    if (q.timer !== undefined || q.draining || this.disposed) return;
    // windowEnd is on the limit's time, which never goes back; the timer runs
    // on the clock, which may read earlier after a regression. Aiming from
    // the earlier reading fires at the boundary instead of early and often.
    const wait = q.windowEnd - Math.min(this.host.now(), this.clock.now());
    // Already open (the clock moved on while Redis answered): admit now rather than wait for the clock to move again.
    if (wait <= 0) {
      void this.drain(key, q);
      return;
    }
    q.timer = this.clock.setTimer(() => {
      q.timer = undefined;
      void this.drain(key, q);
    }, wait);
  }

  /** Admits head waiters while Redis allows; then waits for the next window. */
  private async drain(key: string, q: KeyQueue): Promise<void> {
    if (q.draining) return;
    q.draining = true;
    this.inFlight++;
    try {
      while (q.waiters.length > 0 && !this.disposed) {
        const newest = this.opts.order === "newest_first";
        const w = newest ? q.waiters[q.waiters.length - 1]! : q.waiters[0]!;
        const sent = this.host.now();
        const out = await this.host.consume(key, w.cost);
        if (!out.allowed) {
          // Still closed (Redis time behind ours, or other instances took the window): retry when it ends.
          q.windowEnd = sent + Math.max(1, out.resetMs);
          break;
        }
        const i = q.waiters.indexOf(w);
        if (i < 0) {
          // Cancelled while its consume was in flight: the permit is taken, give it to the next waiter's count.
          continue;
        }
        q.waiters.splice(i, 1);
        q.permits -= w.cost;
        settle(w);
        w.resolve(out);
      }
    } finally {
      q.draining = false;
      this.inFlight--;
    }
    if (q.waiters.length === 0) this.drop(key, q);
    else this.schedule(key, q);
  }

  /** The first window boundary at or after `base` that lies ahead of `now` (or `base` itself when it does). */
  private windowStart(base: number, now: number): number {
    const w = this.params.windowMs;
    // At or past the boundary (its drain still on its way): the window that opened then is the first ahead.
    return base > now ? base : base + Math.floor((now - base) / w) * w;
  }

  private insufficient(q: KeyQueue, now: number): Outcome {
    const start = this.windowStart(q.windowEnd, now);
    const out = new Outcome();
    out.reject("insufficient_capacity", 0, start > now ? start - now : start + this.params.windowMs - now, 0);
    return out;
  }

  /**
   * Rejection for a call that cannot pass the waiters of `q` now. `base` is
   * when the first window ahead opens. Retry-After is the earliest wait
   * after which the same call succeeds, assuming no newcomers: the start of
   * that window plus the windows the queue ahead still takes (see windowsBehind).
   */
  private rejectBehind(q: KeyQueue | undefined, base: number, cost: number, now: number, reason: "rate_limited" | "queue_full", mayQueue: boolean): Outcome {
    const w = this.params.windowMs;
    const start = this.windowStart(base, now);
    const windows = windowsBehind(q, cost, mayQueue, this.bounds);
    const out = new Outcome();
    const reset = start > now ? start - now : start + w - now;
    // Never 0 for a rejection: a window that already opened is still being drained.
    out.reject(reason, 0, reset, Math.max(1, msUntil(now, start + windows * w)));
    return out;
  }
}
