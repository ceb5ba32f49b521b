import type { FixedWindowParams } from "../../algorithms/fixed-window.js";
import { Outcome, msUntil } from "../../algorithms/outcome.js";
import type { Clock, TimerHandle } from "../../core/clock.js";
import { AcquireAbortedError } from "../../core/errors.js";
import type { QueueOrder } from "../../limiter/limit-spec.js";

export interface AsyncQueueHost {
  /** Runs the fixed-window transition on the shared store (consuming only when it allows). */
  consume(key: string, cost: number): Promise<Outcome>;
}

interface Waiter {
  cost: number;
  resolve: (o: Outcome) => void;
  reject: (e: Error) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface KeyQueue {
  waiters: Waiter[];
  permits: number;
  /** When the window that rejected the head ends, on the local clock. */
  windowEnd: number;
  timer: TimerHandle | undefined;
  draining: boolean;
}

/** Most keys with a queue at once; a newcomer beyond it is answered queue_full. */
const MAX_QUEUED_KEYS = 10_000;

/**
 * The FIFO queue of a fixed window whose counts live in Redis. Waiting
 * happens in the caller's process (the semantics of FixedWindowQueue: FIFO
 * or newest first, a newcomer never jumps a waiter, up to `limit` permits
 * wait per key in this process), but every admission is a consume in Redis,
 * so admissions across instances never exceed permitLimit per window.
 * When a window opens, the head waiters of a key are admitted one by one
 * until Redis rejects; the rejection's resetMs says when to try again, which
 * also absorbs any skew between the local clock and Redis TIME.
 */
export class AsyncWindowQueue {
  private readonly queues = new Map<string, KeyQueue>();
  private disposed = false;

  constructor(
    private readonly opts: { limit: number; order: QueueOrder },
    private readonly params: FixedWindowParams,
    private readonly clock: Clock,
    private readonly host: AsyncQueueHost,
  ) {}

  hasWaiters(key: string): boolean {
    return this.queues.has(key);
  }

  /** Answer for an immediate check on a key with waiters here: it may not jump them. */
  behind(key: string, cost: number): Outcome {
    const q = this.queues.get(key);
    return this.rejectBehind(q, q?.permits ?? 0, cost, "rate_limited");
  }

  async acquire(key: string, cost: number, signal: AbortSignal | undefined): Promise<Outcome> {
    if (this.disposed) throw new AcquireAbortedError("limiter disposed", "disposed");
    if (signal?.aborted) throw new AcquireAbortedError("acquire aborted before it started");
    let q = this.queues.get(key);
    if (q === undefined) {
      const out = await this.host.consume(key, cost);
      if (out.allowed || out.reason !== "rate_limited") return out;
      if (this.disposed) throw new AcquireAbortedError("limiter disposed", "disposed");
      q = this.queues.get(key);
      if (q === undefined) {
        if (cost > this.opts.limit || this.queues.size >= MAX_QUEUED_KEYS) return this.rejectBehind(undefined, 0, cost, "queue_full");
        q = { waiters: [], permits: 0, windowEnd: this.clock.now() + out.resetMs, timer: undefined, draining: false };
        this.queues.set(key, q);
      }
    }
    const queue = q;
    if (queue.permits + cost > this.opts.limit) {
      if (this.opts.order === "oldest_first" || cost > this.opts.limit) return this.rejectBehind(queue, queue.permits, cost, "queue_full");
      // newest_first: the oldest waiters give way to the newcomer.
      while (queue.waiters.length > 0 && queue.permits + cost > this.opts.limit) {
        const dropped = queue.waiters.shift()!;
        queue.permits -= dropped.cost;
        settle(dropped);
        dropped.resolve(this.rejectBehind(queue, queue.permits, dropped.cost, "queue_full"));
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
    const wait = Math.max(0, q.windowEnd - this.clock.now());
    q.timer = this.clock.setTimer(() => {
      q.timer = undefined;
      void this.drain(key, q);
    }, wait);
  }

  /** Admits head waiters while Redis allows; then waits for the next window. */
  private async drain(key: string, q: KeyQueue): Promise<void> {
    if (q.draining) return;
    q.draining = true;
    try {
      while (q.waiters.length > 0 && !this.disposed) {
        const newest = this.opts.order === "newest_first";
        const w = newest ? q.waiters[q.waiters.length - 1]! : q.waiters[0]!;
        const out = await this.host.consume(key, w.cost);
        if (!out.allowed) {
          // Still closed (Redis time behind ours, or other instances took the window): retry when it ends.
          q.windowEnd = this.clock.now() + Math.max(1, out.resetMs);
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
    }
    if (q.waiters.length === 0) this.drop(key, q);
    else this.schedule(key, q);
  }

  /**
   * Rejection for a check that would wait behind `ahead` permits: the
   * earliest success is the window in which the queue ahead and this cost
   * both fit (assuming no newcomers).
   */
  private rejectBehind(q: KeyQueue | undefined, ahead: number, cost: number, reason: "rate_limited" | "queue_full"): Outcome {
    const now = this.clock.now();
    const end = q === undefined ? now : Math.max(now, q.windowEnd);
    const windows = Math.max(1, Math.ceil((ahead + cost) / this.params.permitLimit));
    const out = new Outcome();
    out.reject(reason, 0, end - now, msUntil(now, end) + (windows - 1) * this.params.windowMs);
    return out;
  }
}

function settle(w: Waiter): void {
  if (w.signal && w.onAbort) w.signal.removeEventListener("abort", w.onAbort);
}
