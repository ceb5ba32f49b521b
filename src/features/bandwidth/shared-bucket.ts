/** One byte bucket shared by every connection of a key, paced in small grants. */
import type { Clock, TimerHandle } from "../../core/clock.js";
import { ByteBucket, type RateSpec } from "../../algorithms/byte-bucket.js";
import type { Gate } from "./gate.js";
import type { QuotaLease } from "./quota.js";

/** Counters of one shared bucket, for the metrics hooks. */
export interface SharedBucketStats {
  /** Bytes granted in all. */
  bytesGranted: number;
  /** Bytes granted only after waiting in the queue. */
  bytesDelayed: number;
  /** Milliseconds during which at least one connection waited for the bucket. */
  throttledMs: number;
}

/** Shortest pacing step: grants are sized to about this much time at the bucket's rate. */
const QUANTUM_MS = 5;
const MIN_QUANTUM = 1024;
const MAX_QUANTUM = 64 * 1024;

/** The grant size used for a rate: a few ms of traffic, within [1 KiB, 64 KiB] and never above the burst. */
export function quantumFor(spec: RateSpec | null, override?: number): number {
  if (spec === null) return MAX_QUANTUM;
  const burst = Math.max(1, Math.floor(spec.burst ?? spec.bytesPerSecond));
  const q = override ?? Math.min(MAX_QUANTUM, Math.max(MIN_QUANTUM, Math.floor((spec.bytesPerSecond * QUANTUM_MS) / 1000)));
  return Math.max(1, Math.min(q, burst));
}

/**
 * One byte bucket shared by every connection of a key (an identity or an
 * IP) in one direction. Connections wait in a FIFO ring and are served
 * round-robin, one small quantum per turn, so a greedy connection gets no
 * more than its share while others wait. One timer at most, only while
 * someone waits; a bucket with `null` spec is unlimited and never waits.
 */
export class SharedBucket {
  private bucket: ByteBucket | null;
  private quantum: number;
  private head: Tap | undefined;
  private tail: Tap | undefined;
  private timer: TimerHandle | undefined;
  private throttledSince = -1;
  /** Throttled time of this bucket alone (stats sums every bucket of a direction), up to the last mark. */
  private ownThrottledMs = 0;
  private pumping = false;
  private attached = 0;
  /** Clock reading of the last attach or detach, for idle expiry. */
  lastActive: number;
  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.pump();
  };

  constructor(
    private readonly clock: Clock,
    private spec: RateSpec | null,
    /** Where this bucket adds its counters; several buckets may share one (totals survive eviction). */
    readonly stats: SharedBucketStats = { bytesGranted: 0, bytesDelayed: 0, throttledMs: 0 },
    private readonly quantumOverride?: number,
    /** A remote budget every grant must also come out of (ignored while the bucket is unlimited). */
    private readonly lease?: QuotaLease,
  ) {
    this.bucket = spec === null ? null : new ByteBucket(spec);
    this.quantum = quantumFor(spec, quantumOverride);
    this.lastActive = clock.now();
    lease?.onRefill(() => this.pump());
  }

  /** Milliseconds some connection of this bucket waited, including a wait going on now. */
  get throttledMs(): number {
    return this.ownThrottledMs + (this.throttledSince >= 0 ? this.clock.now() - this.throttledSince : 0);
  }

  get rate(): RateSpec | null {
    return this.spec;
  }

  /** Connections attached now. */
  get connections(): number {
    return this.attached;
  }

  /** True when no connection is attached and the bucket is full again, so dropping it changes nothing. */
  isIdle(now: number): boolean {
    return this.attached === 0 && (this.bucket === null || this.bucket.isIdle(now));
  }

  /** A gate for one connection. Close it when the connection ends. */
  attach(): Gate {
    this.attached++;
    this.lastActive = this.clock.now();
    return new Tap(this);
  }

  /** Stops the timer and the lease; attached gates must not be used afterwards. */
  dispose(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.lease?.close();
  }

  /** Applies a new rate to every attached connection from now on. */
  setRate(spec: RateSpec | null): void {
    const now = this.clock.now();
    if (spec === null) this.bucket = null;
    else if (this.bucket === null) this.bucket = new ByteBucket(spec);
    else this.bucket.setRate(now, spec);
    this.spec = spec;
    this.quantum = quantumFor(spec, this.quantumOverride);
    this.timer?.cancel();
    this.timer = undefined;
    this.pump();
  }

  /** @internal */
  request(tap: Tap, max: number, grant: (bytes: number) => void): number {
    const want = this.bucket === null ? max : Math.min(max, this.quantum);
    if (!this.pumping && this.head === undefined && this.tryTake(want)) {
      this.stats.bytesGranted += want;
      return want;
    }
    // The full ask waits: the grant is sized when it is served, at the rate then in force.
    tap.want = max;
    tap.grant = grant;
    this.enqueue(tap);
    // Never served from inside acquire: a Gate's grant callback always comes later.
    if (!this.pumping && this.timer === undefined) this.arm();
    return 0;
  }

  /** @internal */
  withdraw(tap: Tap): void {
    if (tap.grant === undefined) return;
    tap.grant = undefined;
    this.unlink(tap);
    if (this.head === undefined) this.stopThrottle();
  }

  /** @internal */
  detach(tap: Tap): void {
    this.withdraw(tap);
    this.attached--;
    this.lastActive = this.clock.now();
  }

  private tryTake(want: number): boolean {
    const now = this.clock.now();
    if (this.bucket === null) return true;
    // The same arithmetic as waitMs, so "does not fit" always comes with a wait > 0.
    if (this.bucket.waitMs(now, want) > 0) return false;
    if (this.lease && !this.lease.take(want)) return false;
    this.bucket.take(now, want);
    return true;
  }

  /** Serves the ring in order while the bucket has a quantum for the next in line; otherwise arms the one timer. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.head !== undefined) {
        const tap = this.head;
        const want = this.bucket === null ? tap.want : Math.min(tap.want, this.quantum);
        if (!this.tryTake(want)) {
          if (this.timer === undefined) this.arm();
          return;
        }
        this.unlink(tap);
        const grant = tap.grant!;
        tap.grant = undefined;
        this.stats.bytesGranted += want;
        this.stats.bytesDelayed += want;
        // The grantee may ask again from inside `grant`: it is queued behind everyone already waiting.
        grant(want);
      }
      this.stopThrottle();
    } finally {
      this.pumping = false;
    }
  }

  /** Arms the one timer for when the first in line fits (a short lease is woken by its refill instead). */
  private arm(): void {
    this.markThrottle();
    const head = this.head;
    if (head === undefined) return;
    if (this.bucket === null) {
      this.timer = this.clock.setTimer(this.onTimer, 0);
      return;
    }
    const wait = this.bucket.waitMs(this.clock.now(), Math.min(head.want, this.quantum));
    if (wait > 0 || !this.lease) this.timer = this.clock.setTimer(this.onTimer, wait);
  }

  /** Counts throttled time up to now and keeps counting (so a bucket that never empties its queue still reports). */
  private markThrottle(): void {
    const now = this.clock.now();
    if (this.throttledSince >= 0) {
      this.stats.throttledMs += now - this.throttledSince;
      this.ownThrottledMs += now - this.throttledSince;
    }
    this.throttledSince = now;
  }

  private stopThrottle(): void {
    if (this.throttledSince >= 0) {
      const ms = this.clock.now() - this.throttledSince;
      this.stats.throttledMs += ms;
      this.ownThrottledMs += ms;
      this.throttledSince = -1;
    }
    if (this.head === undefined && this.timer !== undefined) {
      this.timer.cancel();
      this.timer = undefined;
    }
  }

  private enqueue(tap: Tap): void {
    tap.prev = this.tail;
    tap.next = undefined;
    if (this.tail) this.tail.next = tap;
    else this.head = tap;
    this.tail = tap;
  }

  private unlink(tap: Tap): void {
    if (tap.prev) tap.prev.next = tap.next;
    else if (this.head === tap) this.head = tap.next;
    if (tap.next) tap.next.prev = tap.prev;
    else if (this.tail === tap) this.tail = tap.prev;
    tap.prev = tap.next = undefined;
  }
}

/** One connection's place at a shared bucket. */
class Tap implements Gate {
  want = 0;
  grant: ((bytes: number) => void) | undefined;
  prev: Tap | undefined;
  next: Tap | undefined;
  private closed = false;

  constructor(private readonly owner: SharedBucket) {}

  acquire(max: number, grant: (bytes: number) => void): number {
    if (this.closed || !(max > 0)) return 0;
    return this.owner.request(this, max, grant);
  }

  cancel(): void {
    this.owner.withdraw(this);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.owner.detach(this);
  }
}
