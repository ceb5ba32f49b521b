/**
 * Reference models of the limiter algorithms, written from their definitions
 * and kept deliberately naive (plain objects, maps, loops), so that each one
 * can be checked by reading it. The engine's transitions are compared with
 * these answer by answer.
 *
 * Every model clamps its clock the way a limit must: a reading earlier than
 * one already seen counts as "no time has passed".
 */

export type Reason = "rate_limited" | "insufficient_capacity" | "concurrency_limit";

/** The part of a decision the models define exactly. `resetMs` is undefined where the model leaves it open. */
export interface ModelDecision {
  allowed: boolean;
  remaining: number;
  limit: number;
  retryAfterMs: number;
  reason: Reason | undefined;
  resetMs: number | undefined;
}

function allow(limit: number, remaining: number, resetMs: number | undefined): ModelDecision {
  return { allowed: true, remaining, limit, retryAfterMs: 0, reason: undefined, resetMs };
}

function reject(limit: number, reason: Reason, remaining: number, retryAfterMs: number, resetMs: number | undefined): ModelDecision {
  return { allowed: false, remaining, limit, retryAfterMs, reason, resetMs };
}

/** A clock reading that never goes backwards. */
class Monotonic {
  private last = -Infinity;
  read(now: number): number {
    if (now > this.last) this.last = now;
    return this.last;
  }
}

/**
 * Token bucket seen as debt, counted in integers: each unit of cost adds
 * `periodMs` to the debt, the debt drains by `rate` per ms, and a check fits
 * while the debt stays within `burst · periodMs`. (In milliseconds the debt
 * is this / rate, which is GCRA's TAT − now.) With integer parameters, costs
 * and clock readings every step is exact, whatever the rate.
 */
export class GcraModel {
  private readonly capacity: number;
  private readonly debts = new Map<string, { debt: number; at: number }>();
  private readonly clock = new Monotonic();

  constructor(
    readonly rate: number,
    readonly periodMs: number,
    readonly burst: number,
  ) {
    this.capacity = burst * periodMs;
  }

  private debtAt(key: string, now: number): number {
    const d = this.debts.get(key);
    if (d === undefined) return 0;
    return Math.max(0, d.debt - (now - d.at) * this.rate);
  }

  private remainingFor(debt: number): number {
    const units = Math.floor((this.capacity - debt) / this.periodMs);
    return Math.min(Math.max(units, 0), Math.floor(this.burst));
  }

  check(key: string, nowIn: number, cost = 1): ModelDecision {
    const now = this.clock.read(nowIn);
    const debt = this.debtAt(key, now);
    const resetMs = debt / this.rate;
    if (cost > this.burst) return reject(this.burst, "insufficient_capacity", this.remainingFor(debt), 0, resetMs);
    const after = debt + cost * this.periodMs;
    if (after > this.capacity) {
      return reject(this.burst, "rate_limited", this.remainingFor(debt), Math.ceil((after - this.capacity) / this.rate), resetMs);
    }
    this.debts.set(key, { debt: after, at: now });
    return allow(this.burst, this.remainingFor(after), after / this.rate);
  }

  peek(key: string, nowIn: number): number {
    return this.remainingFor(this.debtAt(key, this.clock.read(nowIn)));
  }
}

/** At most `permitLimit` per window; windows are [k·W, (k+1)·W). */
export class FixedWindowModel {
  private readonly counts = new Map<string, { window: number; used: number }>();
  private readonly clock = new Monotonic();

  constructor(
    readonly permitLimit: number,
    readonly windowMs: number,
  ) {}

  check(key: string, nowIn: number, cost = 1): ModelDecision {
    const now = this.clock.read(nowIn);
    const window = Math.floor(now / this.windowMs);
    const end = (window + 1) * this.windowMs;
    const c = this.counts.get(key);
    const used = c !== undefined && c.window === window ? c.used : 0;
    const left = this.permitLimit - used;
    if (cost > this.permitLimit) return reject(this.permitLimit, "insufficient_capacity", left, 0, end - now);
    if (cost > left) return reject(this.permitLimit, "rate_limited", left, Math.ceil(end - now), end - now);
    this.counts.set(key, { window, used: used + cost });
    return allow(this.permitLimit, left - cost, end - now);
  }
}

/**
 * Sliding-window counter, computed exactly in integers (times and counts
 * are integers in the tests): the estimate at `now` is
 * prev · (W − e)/W + curr with e = now − start of the current window.
 * The earliest retry is found by trying every later millisecond.
 */
export class SlidingWindowModel {
  private readonly counts = new Map<string, { window: number; curr: number; prev: number }>();
  private readonly clock = new Monotonic();

  constructor(
    readonly limit: number,
    readonly windowMs: number,
  ) {}

  private view(key: string, now: number): { window: number; curr: number; prev: number } {
    const window = Math.floor(now / this.windowMs);
    const c = this.counts.get(key);
    if (c === undefined || c.window < window - 1) return { window, curr: 0, prev: 0 };
    if (c.window === window - 1) return { window, curr: 0, prev: c.curr };
    return { ...c };
  }

  /** W · estimate, an integer. */
  private scaledEstimate(v: { window: number; curr: number; prev: number }, now: number): number {
    const e = now - v.window * this.windowMs;
    return v.prev * (this.windowMs - e) + v.curr * this.windowMs;
  }

  private fits(key: string, t: number, cost: number): boolean {
    const v = this.view(key, t);
    return this.scaledEstimate(v, t) + cost * this.windowMs <= this.limit * this.windowMs;
  }

  check(key: string, nowIn: number, cost = 1): ModelDecision {
    const now = this.clock.read(nowIn);
    const v = this.view(key, now);
    const scaled = this.scaledEstimate(v, now);
    const remaining = Math.max(0, Math.floor((this.limit * this.windowMs - scaled) / this.windowMs));
    if (cost > this.limit) return reject(this.limit, "insufficient_capacity", remaining, 0, undefined);
    if (!this.fits(key, now, cost)) {
      let wait = 1;
      while (!this.fits(key, now + wait, cost)) wait++;
      return reject(this.limit, "rate_limited", remaining, wait, undefined);
    }
    this.counts.set(key, { window: v.window, curr: v.curr + cost, prev: v.prev });
    const after = scaled + cost * this.windowMs;
    return allow(this.limit, Math.max(0, Math.floor((this.limit * this.windowMs - after) / this.windowMs)), undefined);
  }
}

/** Leases per key, each with an expiry (Infinity without a TTL). */
export class ConcurrencyModel {
  private readonly leases = new Map<string, Map<number, number>>();
  private readonly clock = new Monotonic();

  constructor(
    readonly limit: number,
    readonly ttlMs: number = Infinity,
  ) {}

  private live(key: string, now: number): Map<number, number> {
    const m = this.leases.get(key) ?? new Map<number, number>();
    for (const [id, exp] of [...m]) if (exp <= now) m.delete(id);
    this.leases.set(key, m);
    return m;
  }

  acquire(key: string, id: number, nowIn: number): ModelDecision {
    const now = this.clock.read(nowIn);
    const m = this.live(key, now);
    if (m.size >= this.limit) {
      const first = Math.min(...m.values());
      const wait = first === Infinity ? 0 : Math.ceil(first - now);
      return reject(this.limit, "concurrency_limit", 0, wait, wait);
    }
    m.set(id, now + this.ttlMs);
    return allow(this.limit, this.limit - m.size, 0);
  }

  release(key: string, id: number, nowIn: number): void {
    const now = this.clock.read(nowIn);
    this.live(key, now).delete(id);
  }

  /** Pushes a live lease's expiry to now + TTL; false when it has ended. */
  renew(key: string, id: number, nowIn: number): boolean {
    const now = this.clock.read(nowIn);
    const m = this.live(key, now);
    if (!m.has(id)) return false;
    m.set(id, now + this.ttlMs);
    return true;
  }

  held(key: string, nowIn: number): number {
    return this.live(key, this.clock.read(nowIn)).size;
  }
}

export interface PenaltyModelParams {
  throttleAfter: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  banFailures: number;
  banWindowMs: number;
  banDurationMs: number;
  banMultiplier: number;
  banMaxMs: number;
  retentionMs: number;
}

export const PENALTY_DEFAULTS: PenaltyModelParams = {
  throttleAfter: 4,
  backoffBaseMs: 25,
  backoffMaxMs: 1000,
  banFailures: 10,
  banWindowMs: 60_000,
  banDurationMs: 600_000,
  banMultiplier: 2,
  banMaxMs: 86_400_000,
  retentionMs: 600_000,
};

interface PenaltyRecord {
  streak: number;
  lastFailure: number;
  throttledUntil: number;
  windowStart: number;
  windowCount: number;
  bannedUntil: number;
  bans: number;
}

export interface PenaltyView {
  streak: number;
  throttledUntil: number;
  bannedUntil: number;
  bans: number;
}

/**
 * Failure streaks with back-off, bans counted in a window that opens at the
 * first failure after the previous one closed, escalating ban lengths, and
 * retention: a key quiet (no failure, no ban running) for `retentionMs` is
 * clean. No table cap: the cap is tested separately.
 */
export class PenaltyModel {
  private readonly records = new Map<string, PenaltyRecord>();
  private readonly clock = new Monotonic();

  constructor(readonly p: PenaltyModelParams = PENALTY_DEFAULTS) {}

  /** base · 2^(streak − N) capped, by doubling, so no power is ever computed. */
  backoff(streak: number): number {
    if (streak < this.p.throttleAfter) return 0;
    let ms = this.p.backoffBaseMs;
    for (let i = this.p.throttleAfter; i < streak && ms < this.p.backoffMaxMs; i++) ms *= 2;
    return Math.min(ms, this.p.backoffMaxMs);
  }

  banLength(previousBans: number): number {
    let ms = this.p.banDurationMs;
    for (let i = 0; i < previousBans && ms < this.p.banMaxMs; i++) ms *= this.p.banMultiplier;
    return Math.min(ms, this.p.banMaxMs);
  }

  private current(key: string, now: number): PenaltyRecord | undefined {
    const r = this.records.get(key);
    if (r === undefined) return undefined;
    if (now >= Math.max(r.lastFailure, r.bannedUntil) + this.p.retentionMs) {
      this.records.delete(key);
      return undefined;
    }
    return r;
  }

  failure(key: string, nowIn: number): PenaltyView & { banned: boolean } {
    const now = this.clock.read(nowIn);
    const r: PenaltyRecord = this.current(key, now) ?? {
      streak: 0,
      lastFailure: -Infinity,
      throttledUntil: -Infinity,
      windowStart: -Infinity,
      windowCount: 0,
      bannedUntil: -Infinity,
      bans: 0,
    };
    this.records.set(key, r);
    r.streak += 1;
    r.lastFailure = now;
    if (r.streak >= this.p.throttleAfter) r.throttledUntil = now + this.backoff(r.streak);
    if (now - r.windowStart >= this.p.banWindowMs) {
      r.windowStart = now;
      r.windowCount = 0;
    }
    r.windowCount += 1;
    let banned = false;
    if (r.windowCount >= this.p.banFailures && !(r.bannedUntil > now)) {
      r.bannedUntil = now + this.banLength(r.bans);
      r.bans += 1;
      r.windowStart = -Infinity;
      r.windowCount = 0;
      banned = true;
    }
    return { ...this.view(key, now), banned };
  }

  success(key: string): void {
    this.records.delete(key);
  }

  view(key: string, nowIn: number): PenaltyView {
    const now = this.clock.read(nowIn);
    const r = this.current(key, now);
    if (r === undefined) return { streak: 0, throttledUntil: -Infinity, bannedUntil: -Infinity, bans: 0 };
    return { streak: r.streak, throttledUntil: r.throttledUntil, bannedUntil: r.bannedUntil, bans: r.bans };
  }

  /** What a check answers: banned wins over throttled; the wait is whole ms, rounded up. */
  check(key: string, nowIn: number): { allowed: boolean; reason: "banned" | "throttled" | undefined; retryAfterMs: number } {
    const now = this.clock.read(nowIn);
    const v = this.view(key, now);
    if (v.bannedUntil > now) return { allowed: false, reason: "banned", retryAfterMs: Math.ceil(v.bannedUntil - now) };
    if (v.throttledUntil > now) return { allowed: false, reason: "throttled", retryAfterMs: Math.ceil(v.throttledUntil - now) };
    return { allowed: true, reason: undefined, retryAfterMs: 0 };
  }
}

/** The model for a rate limit's options (the same shape the limiters take). */
export type RateModel = GcraModel | FixedWindowModel | SlidingWindowModel;

export function modelFor(
  o:
    | { algorithm: "gcra" | "token_bucket"; rate: number; periodMs?: number; burst?: number }
    | { algorithm: "fixed_window"; permitLimit: number; windowMs: number }
    | { algorithm: "sliding_window"; limit: number; windowMs: number },
): RateModel {
  switch (o.algorithm) {
    case "gcra":
    case "token_bucket":
      return new GcraModel(o.rate, o.periodMs ?? 1000, o.burst ?? o.rate);
    case "fixed_window":
      return new FixedWindowModel(o.permitLimit, o.windowMs);
    case "sliding_window":
      return new SlidingWindowModel(o.limit, o.windowMs);
  }
}

export type QueueOutcome = "ok" | "rate_limited" | "queue_full" | "insufficient_capacity" | "aborted";

/**
 * Fixed window with a queue per key (.NET's FixedWindowRateLimiter): when a
 * call cannot pass now it waits, if the queue has room, and each window
 * that opens admits waiters in service order (oldest first, or newest
 * first) while they fit. Oldest first, nobody passes a non-empty queue;
 * newest first, a newcomer is the newest and passes if the window has room.
 * In newest-first order a full queue drops its oldest waiters to make room. Settlements are
 * reported through `settle(id, outcome)`.
 */
export class FixedWindowQueueModel {
  private readonly keys = new Map<string, { window: number; used: number; queue: { id: number; cost: number }[] }>();
  private readonly clock = new Monotonic();

  constructor(
    readonly permitLimit: number,
    readonly windowMs: number,
    readonly queueLimit: number,
    readonly order: "oldest_first" | "newest_first",
    private readonly settle: (id: number, outcome: QueueOutcome) => void,
  ) {}

  private key(k: string) {
    let s = this.keys.get(k);
    if (s === undefined) {
      s = { window: -Infinity, used: 0, queue: [] };
      this.keys.set(k, s);
    }
    return s;
  }

  private queued(k: string): number {
    return this.key(k).queue.reduce((n, w) => n + w.cost, 0);
  }

  /** Plays out every window boundary up to `now`. */
  advance(nowIn: number): number {
    const now = this.clock.read(nowIn);
    const current = Math.floor(now / this.windowMs);
    for (const s of this.keys.values()) {
      while (s.queue.length > 0 && s.window < current) {
        s.window = s.window === -Infinity ? current : s.window + 1;
        s.used = 0;
        for (;;) {
          const w = this.order === "oldest_first" ? s.queue[0] : s.queue[s.queue.length - 1];
          if (w === undefined || s.used + w.cost > this.permitLimit) break;
          s.used += w.cost;
          if (this.order === "oldest_first") s.queue.shift();
          else s.queue.pop();
          this.settle(w.id, "ok");
        }
      }
      if (s.window < current) {
        s.window = current;
        s.used = 0;
      }
    }
    return now;
  }

  /** A call that may wait. */
  acquire(k: string, id: number, cost: number, nowIn: number): void {
    this.key(k);
    this.advance(nowIn);
    const s = this.key(k);
    if (cost > this.permitLimit) return this.settle(id, "insufficient_capacity");
    const mayPass = s.queue.length === 0 || this.order === "newest_first";
    if (mayPass && s.used + cost <= this.permitLimit) {
      s.used += cost;
      return this.settle(id, "ok");
    }
    if (cost > this.queueLimit) return this.settle(id, "queue_full");
    if (this.queued(k) + cost > this.queueLimit) {
      if (this.order === "oldest_first") return this.settle(id, "queue_full");
      while (this.queued(k) + cost > this.queueLimit) this.settle(s.queue.shift()!.id, "queue_full");
    }
    s.queue.push({ id, cost });
  }

  /** A call that never waits: behind waiters it is rejected. */
  check(k: string, cost: number, nowIn: number): QueueOutcome {
    this.key(k);
    this.advance(nowIn);
    const s = this.key(k);
    if (cost > this.permitLimit) return "insufficient_capacity";
    const mayPass = s.queue.length === 0 || this.order === "newest_first";
    if (!mayPass || s.used + cost > this.permitLimit) return "rate_limited";
    s.used += cost;
    return "ok";
  }

  cancel(k: string, id: number): void {
    const s = this.key(k);
    const i = s.queue.findIndex((w) => w.id === id);
    if (i < 0) return;
    s.queue.splice(i, 1);
    this.settle(id, "aborted");
  }
}
