/**
 * The parts of a fixed window's FIFO queue that do not depend on where the
 * window's counts live: the waiter records and the play-out of the windows
 * ahead that gives a rejection behind the queue its Retry-After. The memory
 * queue and the Redis queue both use them, so the two cannot drift apart.
 */
import type { Outcome } from "../algorithms/outcome.js";
import type { QueueOrder } from "../algorithms/limit-spec.js";
import type { QueueSeat } from "./queue-seats.js";

/** One queued acquire. */
export interface Waiter {
  cost: number;
  resolve: (o: Outcome) => void;
  reject: (e: Error) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** The waiter's places in a queue counted on a shared store (freed when it is settled). */
  seat?: QueueSeat;
}

/** A key's waiters, in arrival order, and the permits they hold in the queue. */
export interface KeyQueue {
  waiters: Waiter[];
  permits: number;
}

/** Detaches a waiter from its abort signal once it is settled, and frees its shared places. */
export function settle(w: Waiter): void {
  if (w.signal && w.onAbort) w.signal.removeEventListener("abort", w.onAbort);
  void w.seat?.release();
}

/** The window's permits and the queue's room, as the play-out needs them. */
export interface QueueBounds {
  /** Permits one window admits. */
  readonly permitLimit: number;
  /** Permits that may wait per key. */
  readonly queueLimit: number;
  readonly order: QueueOrder;
}

/**
 * How many whole windows after the first one ahead a call of `cost` behind
 * `q` must wait, assuming no newcomers: the windows ahead are played out,
 * each admitting waiters in service order while they fit (so costs that
 * pack badly take more windows than their sum suggests). A plain check
 * passes once the cost fits what the window has left and, oldest first,
 * the queue is empty (newest first, the check is the newest caller and
 * goes ahead of any waiter left over); a call that may queue (`mayQueue`) passes as soon as the queue has
 * room for it. Callers pass cost <= permitLimit, and every waiter's cost is
 * too, so each window admits someone: at most one window per waiter plus one.
 */
export function windowsBehind(q: KeyQueue | undefined, cost: number, mayQueue: boolean, b: QueueBounds): number {
  const waiters = q === undefined ? [] : b.order === "newest_first" ? [...q.waiters].reverse() : q.waiters;
  let queued = q === undefined ? 0 : q.permits;
  let next = 0;
  let windows = 0;
  for (; windows <= waiters.length; ) {
    let left = b.permitLimit;
    while (next < waiters.length && waiters[next]!.cost <= left) {
      left -= waiters[next]!.cost;
      queued -= waiters[next]!.cost;
      next++;
    }
    const passes = (next === waiters.length || b.order === "newest_first") && cost <= left;
    if (passes || (mayQueue && queued + cost <= b.queueLimit)) break;
    windows++;
  }
  return windows;
}
