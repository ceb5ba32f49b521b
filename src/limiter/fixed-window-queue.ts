import type { FixedWindowParams } from "../algorithms/fixed-window.js";
import { Outcome, msUntil } from "../algorithms/outcome.js";
import type { Clock, TimerHandle } from "../core/clock.js";
import { AcquireAbortedError } from "../core/errors.js";
import type { QueueOrder } from "./limit-spec.js";

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
}

export interface QueueHost {
  now(): number;
  /** Runs the fixed-window transition for `key` (writing only when it allows). */
  consume(key: string, cost: number, now: number): Outcome;
}

/**
 * The FIFO queue in front of a fixed window (the semantics of .NET's
 * FixedWindowRateLimiter). When a key's window is exhausted, up to
 * `queueLimit` permits wait, in order, and are admitted when the next window
 * opens. A newcomer never jumps a queued waiter, even when a permit is free.
 * In newest_first order the newest waiter is served first and a full queue
 * drops its oldest waiter to make room.
 *
 * Windows are aligned on the clock, so every key's next window opens at the
 * same instant: one timer per limit serves every waiting key.
 */
export class FixedWindowQueue {
  private readonly queues = new Map<string, KeyQueue>();
  private timer: TimerHandle | undefined;
  private disposed = false;

  constructor(
    private readonly opts: { limit: number; order: QueueOrder },
    private readonly params: FixedWindowParams,
    private readonly clock: Clock,
    private readonly host: QueueHost,
  ) {}

  hasWaiters(key: string): boolean {
    return this.queues.has(key);
  }

  /** Total permits waiting across keys. */
  get waiting(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.permits;
    return n;
  }

  /** Answer for an immediate check on a key that has waiters: it may not jump them. */
  behind(key: string, cost: number, now: number): Outcome {
    this.drainKey(key, now);
    const q = this.queues.get(key);
    if (q === undefined) return this.host.consume(key, cost, now);
    return this.rejectBehind(q.permits, cost, now, "rate_limited");
  }

  acquire(key: string, cost: number, signal: AbortSignal | undefined): Promise<Outcome> {
    if (this.disposed) return Promise.reject(new AcquireAbortedError("limiter disposed", "disposed"));
    if (signal?.aborted) return Promise.reject(new AcquireAbortedError("acquire aborted before it started"));
    const now = this.host.now();
    this.drainKey(key, now);
    let q = this.queues.get(key);
    if (q === undefined) {
      const out = this.host.consume(key, cost, now);
      if (out.allowed || out.reason !== "rate_limited") return Promise.resolve(copy(out));
      if (cost > this.opts.limit) return Promise.resolve(this.rejectBehind(0, cost, now, "queue_full"));
      q = { waiters: [], permits: 0 };
      this.queues.set(key, q);
    }
    if (q.permits + cost > this.opts.limit) {
      if (this.opts.order === "oldest_first" || cost > this.opts.limit) {
        return Promise.resolve(this.rejectBehind(q.permits, cost, now, "queue_full"));
      }
      // newest_first: the oldest waiters give way to the newcomer.
      while (q.waiters.length > 0 && q.permits + cost > this.opts.limit) {
        const dropped = q.waiters.shift()!;
        q.permits -= dropped.cost;
        this.settle(dropped);
        dropped.resolve(this.rejectBehind(q.permits, dropped.cost, now, "queue_full"));
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
        this.settle(w);
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
    this.settle(w);
    w.reject(new AcquireAbortedError("acquire aborted while queued"));
  }

  private settle(w: Waiter): void {
    if (w.signal && w.onAbort) w.signal.removeEventListener("abort", w.onAbort);
  }

  /**
   * Rejection for a check that would have to wait behind `ahead` permits: the
   * earliest success is the window in which the queue ahead and this cost
   * both fit (assuming no newcomers), never the bare window length.
   */
  private rejectBehind(ahead: number, cost: number, now: number, reason: "rate_limited" | "queue_full"): Outcome {
    const w = this.params.windowMs;
    const end = Math.floor(now / w) * w + w;
    const windows = Math.max(1, Math.ceil((ahead + cost) / this.params.permitLimit));
    const out = new Outcome();
    out.reject(reason, 0, end - now, msUntil(now, end) + (windows - 1) * w);
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
      this.settle(w);
      w.resolve(copy(out));
    }
    if (q.waiters.length === 0) this.queues.delete(key);
  }

  private schedule(now: number): void {
    if (this.timer !== undefined || this.disposed) return;
    const w = this.params.windowMs;
    const next = Math.floor(now / w) * w + w;
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      const t = this.host.now();
      for (const key of [...this.queues.keys()]) this.drainKey(key, t);
      if (this.queues.size > 0) this.schedule(t);
    }, next - now);
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
