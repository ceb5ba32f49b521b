/** The FIFO queue of a fixed-window limit: callers wait for the next window instead of being refused. */
import type { FixedWindowParams } from "../algorithms/fixed-window.js";
import type { QueueOrder } from "../algorithms/limit-spec.js";
import { Outcome, msUntil } from "../algorithms/outcome.js";
import type { Clock, TimerHandle } from "../core/clock.js";
import { AcquireAbortedError } from "../core/errors.js";
import type { Reply } from "../stores/store.js";
import { type KeyQueue as SharedKeyQueue, type QueueBounds, type Waiter, settle, windowsBehind } from "./queue-waiters.js";
import type { QueueSeat, QueueSeats } from "./queue-seats.js";
import { then, value } from "./reply.js";

/** Most keys with waiters at once, so a flood of distinct keys cannot grow the queues without bound. */
export const MAX_QUEUED_KEYS = 10_000;

export interface QueueHost<S extends boolean> {
  readonly sync: S;
  /** The limit's time (its clock, clamped so it never goes back; the local clock when the store keeps time). */
  now(): number;
  /** True when windows are aligned on `now()` (false: on the store's clock, learned from its replies). */
  readonly aligned: boolean;
  /** Runs the fixed-window transition on the store (consuming only when it allows); never fails (the failure mode answers). */
  consume(key: string, cost: number): Reply<S, Outcome>;
  /** The window's own answer for `cost`, consuming nothing. */
  peek(key: string, cost: number): Reply<S, Outcome>;
  /**
   * Where the queue limit is counted when the window's counts are shared by
   * several instances (async stores): without it each instance would let
   * `queueLimit` wait, so N instances would queue N times as many.
   */
  readonly seats?: QueueSeats;
}

interface KeyQueue extends SharedKeyQueue {
  /** When the window that rejected the head ends, on the limit's time (host.now()). */
  windowEnd: number;
  timer: TimerHandle | undefined;
  draining: boolean;
}

/**
 * The FIFO queue in front of a fixed window (the semantics of .NET's
 * FixedWindowRateLimiter), on any store. When a key's window is exhausted,
 * up to `queueLimit` permits wait, in order, and are admitted when the next
 * window opens. Oldest first, a newcomer never jumps a queued waiter, even
 * when a permit is free. Newest first, the newest caller is served first
 * (so a newcomer takes a free permit at once) and a full queue drops its
 * oldest waiter to make room.
 *
 * Waiting happens in this process; every admission is a consume on the
 * store, so on a shared store admissions across instances never exceed
 * permitLimit per window. When a window opens, the head waiters are
 * admitted one by one until the store rejects; the rejection says when to
 * try again (on a store with its own clock that absorbs the skew between
 * the clocks). On a sync store, a call first admits the waiters that fit,
 * so an answer never depends on whether the window's timer has fired yet.
 */
export class FixedWindowQueue<S extends boolean> {
  private readonly queues = new Map<string, KeyQueue>();
  private disposed = false;
  /** Store calls the queue has in flight (drains and newcomers), for `idle`. */
  private inFlight = 0;
  private readonly bounds: QueueBounds;
  private readonly sync: S;

  constructor(
    private readonly opts: { limit: number; order: QueueOrder },
    private readonly params: FixedWindowParams,
    private readonly clock: Clock,
    private readonly host: QueueHost<S>,
  ) {
    this.bounds = { permitLimit: params.permitLimit, queueLimit: opts.limit, order: opts.order };
    this.sync = host.sync;
  }

  hasWaiters(key: string): boolean {
    return this.queues.has(key);
  }

  /** Total permits waiting across keys. */
  get waiting(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.permits;
    return n;
  }

  /** True when nothing of this queue waits on the store (no drain, no newcomer's call in flight). */
  get idle(): boolean {
    return this.inFlight === 0;
  }

  /**
   * True when a call on `key` is answered by the queue alone, without
   * asking the store: oldest first a newcomer may not pass the waiters,
   * and a cost no window can hold is insufficient capacity.
   */
  blocks(key: string, cost: number): boolean {
    return this.queues.has(key) && (this.opts.order === "oldest_first" || cost > this.params.permitLimit);
  }

  /** On a sync store: admits the waiters of `key` that fit now (the timer does the same at each window start). */
  drain(key: string): void {
    const q = this.queues.get(key);
    if (q !== undefined && this.sync) this.drainKey(key, q);
  }

  /** Answer for an immediate check on a key with waiters here. */
  behind(key: string, cost: number): Reply<S, Outcome> {
    this.drain(key);
    if (this.blocks(key, cost) || !this.queues.has(key)) {
      const a = this.answer(key, cost, undefined);
      return a !== undefined ? value(this.sync, a) : this.call(this.host.consume(key, cost));
    }
    return then(this.sync, this.call(this.host.consume(key, cost)), (free) => this.answer(key, cost, free)!);
  }

  /** What `behind` would answer, consuming and admitting nothing. */
  peekBehind(key: string, cost: number): Reply<S, Outcome> {
    if (this.blocks(key, cost) || !this.queues.has(key)) {
      const a = this.answer(key, cost, undefined);
      return a !== undefined ? value(this.sync, a) : this.call(this.host.peek(key, cost));
    }
    return then(this.sync, this.call(this.host.peek(key, cost)), (free) => this.answer(key, cost, free)!);
  }

  /**
   * The queue's answer for a call on `key`, given the window's own answer
   * `free` (undefined when the store was not asked because the queue
   * blocks): `free` itself when nobody waits or a newest-first newcomer
   * fits, else the rejection behind the waiters.
   */
  answer(key: string, cost: number, free: Outcome | undefined): Outcome | undefined {
    const q = this.queues.get(key);
    if (q === undefined) return free;
    const now = this.host.now();
    if (cost > this.params.permitLimit) return this.insufficient(q, now);
    if (free !== undefined && (free.allowed || free.reason !== "rate_limited")) return free;
    return this.rejectBehind(q, q.windowEnd, cost, now, "rate_limited", false);
  }

  async acquire(key: string, cost: number, signal: AbortSignal | undefined, onQueued?: () => void): Promise<Outcome> {
    if (this.disposed) throw new AcquireAbortedError("limiter disposed", "disposed");
    if (signal?.aborted) throw new AcquireAbortedError("acquire aborted before it started");
    // On a sync store this function runs to its end without yielding: the
    // waiter is queued in the same turn as the consume that sent it there.
    this.drain(key);
    let q = this.queues.get(key);
    // A cost no window can hold is answered at once and never queued: at the
    // head of the queue it would block every waiter behind it forever.
    if (q !== undefined && cost > this.params.permitLimit) return this.insufficient(q, this.host.now());
    // The window's end is measured from when the store was asked: the reply may come after the clock moved on.
    let end = this.host.now();
    if (q === undefined || this.opts.order === "newest_first") {
      // No queue yet, or newest first (the newcomer is served first): the window decides.
      const r = this.call(this.host.consume(key, cost));
      const out = this.sync ? (r as Outcome) : await r;
      if (out.allowed || out.reason !== "rate_limited") return copy(out);
      if (this.disposed) throw new AcquireAbortedError("limiter disposed", "disposed");
      if (signal?.aborted) throw new AcquireAbortedError("acquire aborted before it started");
      end = this.windowEnd(end, out, false);
      q = this.queues.get(key);
    }
    let seat: QueueSeat | undefined;
    if (this.host.seats !== undefined && cost <= this.opts.limit) {
      // The queue is shared: a place in it is taken on the store first. A
      // full queue across the instances refuses the newcomer (in both orders:
      // the waiters another instance holds cannot be dropped from here).
      seat = await this.call1(this.host.seats.take(key, cost));
      if (seat === undefined && this.opts.order === "newest_first") seat = await this.call1(this.makeRoom(key, cost));
      if (seat === undefined) {
        const lq = this.queues.get(key);
        return this.rejectBehind(lq, lq?.windowEnd ?? end, cost, this.host.now(), "queue_full", lq !== undefined);
      }
      if (this.disposed || signal?.aborted) {
        void seat.release();
        if (this.disposed) throw new AcquireAbortedError("limiter disposed", "disposed");
        throw new AcquireAbortedError("acquire aborted before it started");
      }
      // The local queue may have been drained and dropped while the store answered.
      q = this.queues.get(key);
    }
    const now = this.host.now();
    if (q === undefined) {
      if (cost > this.opts.limit || this.queues.size >= MAX_QUEUED_KEYS) {
        void seat?.release();
        return this.rejectBehind(undefined, end, cost, now, "queue_full", false);
      }
      q = { waiters: [], permits: 0, windowEnd: end, timer: undefined, draining: false };
      this.queues.set(key, q);
    }
    const queue = q;
    if (queue.permits + cost > this.opts.limit) {
      if (this.opts.order === "oldest_first" || cost > this.opts.limit) {
        void seat?.release();
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
      const w: Waiter = { cost, resolve, reject, signal, onAbort: undefined, ...(seat === undefined ? {} : { seat }) };
      if (signal) {
        w.onAbort = () => this.cancel(key, w);
        signal.addEventListener("abort", w.onAbort, { once: true });
      }
      queue.waiters.push(w);
      queue.permits += cost;
      this.schedule(key, queue);
      try {
        onQueued?.();
      } catch {
        // A caller's notice must not leave a waiter in the queue with its promise already failed.
      }
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

  /**
   * Newest first on a shared queue that is full: the oldest waiters of this
   * instance give way (as they would in a local queue), then the place is
   * asked for again. Waiters held by other instances cannot be dropped from
   * here, so a full queue with none of them local refuses the newcomer.
   */
  private async makeRoom(key: string, cost: number): Promise<QueueSeat | undefined> {
    const q = this.queues.get(key);
    if (q === undefined || q.waiters.length === 0) return undefined;
    const freed: Promise<void>[] = [];
    const now = this.host.now();
    // As a local queue would (and exactly so when this is the only instance).
    while (q.waiters.length > 0 && q.permits + cost > this.opts.limit) {
      const dropped = q.waiters.shift()!;
      q.permits -= dropped.cost;
      if (dropped.seat) freed.push(dropped.seat.release());
      settle(dropped);
      dropped.resolve(this.rejectBehind(q, q.windowEnd, dropped.cost, now, "queue_full", false));
    }
    await Promise.all(freed);
    return this.host.seats!.take(key, cost);
  }

  /** Counts a call for a shared place in flight until it answers. */
  private call1<T>(p: Promise<T>): Promise<T> {
    this.inFlight++;
    return p.finally(() => {
      this.inFlight--;
    });
  }

  /** Counts a store call in flight until it answers (sync answers are never in flight). */
  private call(r: Reply<S, Outcome>): Reply<S, Outcome> {
    if (this.sync) return r;
    this.inFlight++;
    return (r as Promise<Outcome>).finally(() => {
      this.inFlight--;
    }) as Reply<S, Outcome>;
  }

  /**
   * When the window that rejected a call sent at `sent` ends: aligned on the
   * limit's clock, or learned from the store's reply (`atLeastOne`: a drain
   * retries no sooner than 1 ms later).
   */
  private windowEnd(sent: number, out: Outcome, atLeastOne: boolean): number {
    if (this.host.aligned) {
      const w = this.params.windowMs;
      return Math.floor(sent / w) * w + w;
    }
    return sent + (atLeastOne ? Math.max(1, out.resetMs) : out.resetMs);
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
    // Already open (the clock moved on while the store answered): admit now rather than wait for the clock to move again.
    if (wait <= 0) {
      void this.drainKey(key, q);
      return;
    }
    q.timer = this.clock.setTimer(() => {
      q.timer = undefined;
      void this.drainKey(key, q);
    }, wait);
  }

  /** Admits head waiters while the store allows; then waits for the next window. */
  private drainKey(key: string, q: KeyQueue): void | Promise<void> {
    if (q.draining) return;
    q.draining = true;
    if (!this.sync) return this.drainAsync(key, q);
    try {
      while (q.waiters.length > 0 && !this.disposed) {
        const w = this.head(q);
        const sent = this.host.now();
        if (!this.admit(q, w, sent, this.host.consume(key, w.cost) as Outcome)) break;
      }
    } finally {
      q.draining = false;
    }
    this.afterDrain(key, q);
  }

  private async drainAsync(key: string, q: KeyQueue): Promise<void> {
    this.inFlight++;
    try {
      while (q.waiters.length > 0 && !this.disposed) {
        const w = this.head(q);
        const sent = this.host.now();
        if (!this.admit(q, w, sent, await this.host.consume(key, w.cost))) break;
      }
    } finally {
      q.draining = false;
      this.inFlight--;
    }
    this.afterDrain(key, q);
  }

  private head(q: KeyQueue): Waiter {
    return this.opts.order === "newest_first" ? q.waiters[q.waiters.length - 1]! : q.waiters[0]!;
  }

  /** Settles head waiter `w` with `out` if it was allowed; false when the window is closed (draining stops). */
  private admit(q: KeyQueue, w: Waiter, sent: number, out: Outcome): boolean {
    if (!out.allowed) {
      // Still closed (the store's time behind ours, or other instances took the window): retry when it ends.
      q.windowEnd = this.windowEnd(sent, out, true);
      // The waiters wait one more window: their shared places must outlive it.
      for (const x of q.waiters) x.seat?.renew();
      return false;
    }
    const i = q.waiters.indexOf(w);
    // Cancelled while its consume was in flight: the permit is taken, the next waiter is asked anew.
    if (i < 0) return true;
    q.waiters.splice(i, 1);
    q.permits -= w.cost;
    settle(w);
    w.resolve(copy(out));
    return true;
  }

  private afterDrain(key: string, q: KeyQueue): void {
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

/** A settled waiter keeps its own outcome: a sync store reuses the one it writes into. */
function copy(o: Outcome): Outcome {
  const c = new Outcome();
  if (o.allowed) c.allow(o.remaining, o.resetMs);
  else c.reject(o.reason ?? "rate_limited", o.remaining, o.resetMs, o.retryAfterMs);
  return c;
}
