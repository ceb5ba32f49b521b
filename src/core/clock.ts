/**
 * Time seam. Nothing in Portcullis reads Date.now() or performance.now()
 * directly: every component receives a Clock, so tests drive time by hand and
 * production uses the system clock.
 */

/** A cancellable timer handle. */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Monotonic milliseconds (may be fractional). Never goes backwards on the system clock. */
  now(): number;
  /** Wall-clock milliseconds since the epoch, for state that is persisted or shown to people. */
  wallNow(): number;
  /** Run `fn` once after `ms` milliseconds of this clock's time. */
  setTimer(fn: () => void, ms: number): TimerHandle;
}

class SystemClock implements Clock {
  private readonly origin = performance.timeOrigin;
  now(): number {
    return performance.now();
  }
  wallNow(): number {
    return this.origin + performance.now();
  }
  setTimer(fn: () => void, ms: number): TimerHandle {
    const t = setTimeout(fn, Math.max(0, Math.ceil(ms)));
    // A pending limiter timer must never keep a process alive on its own.
    t.unref();
    return new NodeTimer(t);
  }
}

/** A timer of the system clock (a method, not a closure per timer: the gateway sets one per connection). */
class NodeTimer implements TimerHandle {
  constructor(private readonly t: NodeJS.Timeout) {}
  cancel(): void {
    clearTimeout(this.t);
  }
}

/** The real clock. Stateless apart from the process's time origin, so sharing it is safe. */
export const systemClock: Clock = new SystemClock();

interface ManualTimer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * A clock that only moves when told to. Timers fire in due order during
 * `advance`, each seeing `now()` equal to its due time.
 */
export class ManualClock implements Clock {
  private t: number;
  private readonly wallOffset: number;
  private timers: ManualTimer[] = [];
  private seq = 0;

  constructor(startMs = 0, wallStartMs = 1_700_000_000_000) {
    this.t = startMs;
    this.wallOffset = wallStartMs - startMs;
  }

  now(): number {
    return this.t;
  }

  wallNow(): number {
    return this.t + this.wallOffset;
  }

  /** Set the time directly; may go backwards (to test clock regressions). Fires no timers backwards. */
  set(ms: number): void {
    this.t = ms;
    this.fireDue();
  }

  advance(ms: number): void {
    const target = this.t + ms;
    for (;;) {
      const next = this.nextDue();
      if (next === undefined || next.at > target) break;
      this.t = Math.max(this.t, next.at);
      this.remove(next);
      next.fn();
    }
    this.t = target;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer: ManualTimer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
        this.remove(timer);
      },
    };
  }

  /** Number of timers waiting to fire. */
  pendingTimers(): number {
    return this.timers.length;
  }

  private fireDue(): void {
    for (;;) {
      const next = this.nextDue();
      if (next === undefined || next.at > this.t) return;
      this.remove(next);
      next.fn();
    }
  }

  private nextDue(): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (const t of this.timers) {
      if (best === undefined || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    }
    return best;
  }

  private remove(timer: ManualTimer): void {
    const i = this.timers.indexOf(timer);
    if (i >= 0) this.timers.splice(i, 1);
  }
}

/**
 * Reads its base clock once per run of synchronous code and answers from
 * that reading until the next microtask checkpoint, the way nginx caches
 * its time once per event-loop iteration. A limit check then costs one clock
 * read per event-loop task instead of one per decision (a precise read is
 * ~60 ns, more than the rest of a GCRA check). A stale reading only makes a
 * limiter stricter: less time has "passed", so nothing refills early.
 */
export class TurnCachedClock implements Clock {
  private cached = 0;
  private fresh = false;
  private readonly expire = (): void => {
    this.fresh = false;
  };

  constructor(private readonly base: Clock = systemClock) {}

  now(): number {
    if (!this.fresh) {
      this.cached = this.base.now();
      this.fresh = true;
      queueMicrotask(this.expire);
    }
    return this.cached;
  }

  wallNow(): number {
    return this.base.wallNow();
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    return this.base.setTimer(fn, ms);
  }
}
