/**
 * Whether a store that can fail (Redis, the message store) talks to its
 * backend or answers with its failure mode. Any failed call
 * (error, timeout, connection down) switches to the configured failure mode;
 * from then on calls go straight to the fallback (no request waits on a dead
 * Redis) while a probe pings Redis every `probeIntervalMs`. The first probe
 * that answers switches back. Each transition is reported once, with a
 * reason, and counted.
 */
import type { FailureMode } from "./store.js";

export type { FailureMode };
/** The backend answers ("redis", "remote"), or the failure mode does. */
export type StoreMode<Up extends string = "redis"> = Up | FailureMode;

export interface StoreEvents<Up extends string = "redis"> {
  /** Called on every transition between the backend and the failure mode. */
  onModeChange?(from: StoreMode<Up>, to: StoreMode<Up>, reason: string): void;
}

/** The events of a RedisStore. */
export type RedisStoreEvents = StoreEvents<"redis">;

export interface HealthCounters {
  /** Transitions from Redis to the failure mode. */
  failovers: number;
  /** Transitions back to Redis. */
  recoveries: number;
  /** Decisions answered by the failure mode instead of Redis. */
  fallbackDecisions: number;
}

export class StoreHealth<Up extends string = "redis"> {
  private current: StoreMode<Up>;
  private probeTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private readonly recoveryListeners: (() => void)[] = [];
  readonly counters: HealthCounters = { failovers: 0, recoveries: 0, fallbackDecisions: 0 };

  constructor(
    readonly failureMode: FailureMode,
    private readonly probeIntervalMs: number,
    private readonly probe: () => Promise<boolean>,
    private readonly events: StoreEvents<Up>,
    private readonly upMode: Up = "redis" as Up,
  ) {
    this.current = upMode;
  }

  get mode(): StoreMode<Up> {
    return this.current;
  }

  get up(): boolean {
    return this.current === this.upMode;
  }

  failed(reason: string): void {
    if (this.closed || this.current !== this.upMode) return;
    this.current = this.failureMode;
    this.counters.failovers++;
    this.emit(this.upMode, this.failureMode, reason);
    this.scheduleProbe();
  }

  /** Redis answered outside the probe (for example a caller's readiness check): back to Redis now. */
  recovered(reason: string): void {
    if (this.closed || this.current === this.upMode) return;
    if (this.probeTimer !== undefined) clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    const from = this.current;
    this.current = this.upMode;
    this.counters.recoveries++;
    this.emit(from, this.upMode, reason);
    for (const l of this.recoveryListeners) {
      try {
        l();
      } catch {
        // A faulty listener must not break the others or the decision path.
      }
    }
  }

  /** Calls `listener` after every return to Redis. */
  onRecovery(listener: () => void): void {
    this.recoveryListeners.push(listener);
  }

  close(): void {
    this.closed = true;
    if (this.probeTimer !== undefined) clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
  }

  private scheduleProbe(): void {
    if (this.closed || this.probeTimer !== undefined) return;
    const t = setTimeout(() => {
      this.probeTimer = undefined;
      this.probe().then(
        (ok) => this.afterProbe(ok),
        () => this.afterProbe(false),
      );
    }, this.probeIntervalMs);
    // The probe must never keep a process alive on its own.
    t.unref();
    this.probeTimer = t;
  }

  private afterProbe(ok: boolean): void {
    if (this.closed || this.current === this.upMode) return;
    if (!ok) {
      this.scheduleProbe();
      return;
    }
    this.recovered(`${this.upMode} answered`);
  }

  private emit(from: StoreMode<Up>, to: StoreMode<Up>, reason: string): void {
    try {
      this.events.onModeChange?.(from, to, reason);
    } catch {
      // A faulty listener must not break the decision path.
    }
  }
}
