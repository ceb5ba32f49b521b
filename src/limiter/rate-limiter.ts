import { Outcome } from "../algorithms/outcome.js";
import type { RateAlgorithm } from "../algorithms/rate-algorithm.js";
import { type Clock, TurnCachedClock } from "../core/clock.js";
import { InvalidArgumentError } from "../core/errors.js";
import { cost as validCost } from "../core/validate.js";
import type { MemoryTable } from "../stores/memory-table.js";
import { MemoryStore } from "../stores/memory-store.js";
import { Decision } from "./decision.js";
import { FixedWindowQueue } from "./fixed-window-queue.js";
import { type LimitSpec, type RateLimitOptions, limitSpec, nearLimitShare } from "./limit-spec.js";
import type { AcquireOptions, Limiter } from "./types.js";

export type MemoryLimiterOptions = RateLimitOptions & {
  /** Unique within its store (default: a generated name). */
  name?: string;
  store?: MemoryStore;
  clock?: Clock;
  /** Compute and report decisions, never enforce them. */
  shadow?: boolean;
  /** Share of the limit at or below which `nearLimit` is set (default 0.2). */
  nearLimitRatio?: number;
};

/**
 * A rate limit on the memory store. The hot path is: clamp the clock, find
 * the key's slot, run the algorithm's transition on it in place, wrap the
 * outcome in a Decision. Nothing else is allocated.
 */
export class RateLimiter implements Limiter {
  readonly sync = true as const;
  readonly name: string;
  readonly algorithm: string;
  readonly limit: number;
  readonly shadow: boolean;
  readonly spec: LimitSpec;
  private readonly algo: RateAlgorithm<unknown>;
  private readonly params: unknown;
  private readonly table: MemoryTable;
  private readonly clock: Clock;
  private readonly nearThreshold: number;
  private readonly out = new Outcome();
  private readonly queue: FixedWindowQueue | undefined;
  private lastNow = -Infinity;

  constructor(o: MemoryLimiterOptions, generatedName: string) {
    this.spec = limitSpec(o);
    this.name = o.name ?? generatedName;
    if (typeof this.name !== "string" || this.name.length === 0) throw new InvalidArgumentError("name", "must be a non-empty string");
    this.algorithm = this.spec.kind;
    this.algo = this.spec.algorithm as RateAlgorithm<unknown>;
    this.params = this.spec.params;
    this.limit = this.algo.limit(this.params);
    this.shadow = o.shadow ?? false;
    this.nearThreshold = this.limit * nearLimitShare(o.nearLimitRatio);
    this.clock = o.clock ?? new TurnCachedClock();
    const algo = this.algo;
    const params = this.params;
    this.table = (o.store ?? new MemoryStore()).table(this.name, {
      width: algo.width,
      init: (s, off) => algo.init(s, off),
      isIdle: (s, off, now) => algo.isIdle(s, off, now, params),
    });
    if (this.spec.kind === "fixed_window" && this.spec.queue) {
      this.queue = new FixedWindowQueue(this.spec.queue, this.spec.params, this.clock, {
        now: () => this.now(),
        consume: (key, c, now) => this.consumeAt(key, c, now),
      });
    }
  }

  check(key: string, cost = 1): Decision {
    if (typeof key !== "string") throw new InvalidArgumentError("key", "must be a string");
    if (cost !== 1) validCost(cost);
    const now = this.now();
    if (this.queue !== undefined && this.queue.hasWaiters(key)) return this.decide(this.queue.behind(key, cost, now));
    return this.decide(this.consumeAt(key, cost, now));
  }

  /**
   * The same check as `check`, answering only allowed or not. It allocates
   * nothing, for hot paths that do not need the numbers (shadow mode answers
   * true, like `check`).
   */
  allow(key: string, cost = 1): boolean {
    if (typeof key !== "string") throw new InvalidArgumentError("key", "must be a string");
    if (cost !== 1) validCost(cost);
    const now = this.now();
    const out = this.queue !== undefined && this.queue.hasWaiters(key) ? this.queue.behind(key, cost, now) : this.consumeAt(key, cost, now);
    return out.allowed || this.shadow;
  }

  peek(key: string, cost = 1): Decision {
    if (typeof key !== "string") throw new InvalidArgumentError("key", "must be a string");
    if (cost !== 1) validCost(cost);
    const now = this.now();
    const slot = this.table.find(key);
    const out = this.out;
    if (slot < 0) {
      const fresh = new Float64Array(this.algo.width);
      this.algo.init(fresh, 0);
      this.algo.peek(fresh, 0, now, cost, this.params, out);
    } else {
      this.algo.peek(this.table.state, slot * this.algo.width, now, cost, this.params, out);
    }
    // Waiters stand between this key and its free permits: answer as check would.
    if (this.queue !== undefined && this.queue.hasWaiters(key)) return this.decide(this.queue.peekBehind(key, cost, now, out));
    return this.decide(out);
  }

  reset(key: string): void {
    this.table.delete(key);
  }

  async acquire(key: string, cost = 1, options: AcquireOptions = {}): Promise<Decision> {
    if (typeof key !== "string") throw new InvalidArgumentError("key", "must be a string");
    if (cost !== 1) validCost(cost);
    // A shadowed limit only reports: it never makes a caller wait.
    if (this.queue === undefined || this.shadow) return this.check(key, cost);
    const out = await this.queue.acquire(key, cost, options.signal);
    return this.decide(out);
  }

  dispose(): void {
    this.queue?.dispose();
  }

  /** Keys this limit tracks now. */
  get size(): number {
    return this.table.size;
  }

  /**
   * Consumes like `check` but first copies the key's state into `undo`, so a
   * composite check can put it back if a later limit rejects.
   * @internal
   */
  consumeUndoable(key: string, cost: number, now: number, undo: Float64Array): Decision {
    // Waiters owed this window are admitted before the snapshot (that is not
    // this call's to undo); a newest-first newcomer may then take a permit,
    // which is.
    if (this.queue !== undefined) this.queue.drain(key, now);
    const t = this.table;
    const off = t.slot(key, now) * t.width;
    for (let i = 0; i < t.width; i++) undo[i] = t.state[off + i]!;
    if (this.queue !== undefined && this.queue.hasWaiters(key)) return this.decide(this.queue.behind(key, cost, now));
    this.algo.consume(t.state, off, now, cost, this.params, this.out);
    return this.decide(this.out);
  }

  /** @internal Restores the state saved by consumeUndoable (no-op if the key was evicted since). */
  undo(key: string, undo: Float64Array): void {
    const slot = this.table.find(key);
    if (slot < 0) return;
    const off = slot * this.table.width;
    for (let i = 0; i < this.table.width; i++) this.table.state[off + i] = undo[i]!;
  }

  /** @internal The clock as this limit sees it: never earlier than any reading before it. */
  now(): number {
    const t = this.clock.now();
    if (t > this.lastNow) this.lastNow = t;
    return this.lastNow;
  }

  private consumeAt(key: string, cost: number, now: number): Outcome {
    const t = this.table;
    const slot = t.slot(key, now);
    this.algo.consume(t.state, slot * t.width, now, cost, this.params, this.out);
    return this.out;
  }

  private decide(o: Outcome): Decision {
    // Read once: an algorithm may derive it on read (see Outcome.remaining).
    const remaining = o.remaining;
    if (!o.allowed && this.shadow) {
      return new Decision(true, remaining, this.limit, o.resetMs, 0, o.reason, remaining <= this.nearThreshold, true);
    }
    return new Decision(o.allowed, remaining, this.limit, o.resetMs, o.retryAfterMs, o.reason, remaining <= this.nearThreshold, false);
  }
}
