/** A byte budget shared beyond this process, spent locally in leased slices. */
import type { Clock, TimerHandle } from "../../core/clock.js";
import { type Rng, systemRng } from "../../core/random.js";
import { positive } from "../../core/validate.js";
import type { RateSpec } from "../../algorithms/byte-bucket.js";

/**
 * A budget of bytes shared beyond this process, for example by every
 * gateway on one Redis. `take` grants 0 ..= `bytes` of `key`'s budget at
 * its configured rate; the gateway spends what it got locally (a lease) and
 * comes back for more. N gateways together therefore exceed the budget by
 * at most the unspent leases they hold: one lease slice each.
 */
export interface QuotaSource {
  /**
   * Grants 0 ..= `bytes` from `key`'s shared bucket, which refills at
   * `spec.bytesPerSecond` up to `spec.burst`. The spec travels with every
   * call so that an override or a reload changes the shared rate too.
   * A rejection or a throw counts as a grant of 0.
   */
  take(key: string, bytes: number, spec: RateSpec): number | Promise<number>;
}

export interface QuotaLeaseOptions {
  source: QuotaSource;
  key: string;
  clock: Clock;
  /** The rate currently configured for the key. */
  spec: () => RateSpec | null;
  /** Bytes asked of the source at once (one lease slice). */
  sliceBytes: number;
  /**
   * Wait before asking again after the source granted nothing or failed
   * (default 20 ms), drawn each time from [0.5, 1.5) × retryMs.
   */
  retryMs?: number;
  /** The draw of the retry wait (default: Math.random). */
  rng?: Rng;
}

/**
 * The local end of a leased quota: a pool of bytes already granted by the
 * source. Spending is synchronous; when the pool runs short one refill (one
 * slice) is in flight at a time, and the owner is told when bytes arrive.
 * A failing source grants nothing: shaping fails closed, and retries.
 */
export class QuotaLease {
  private pool = 0;
  private inFlight = false;
  private timer: TimerHandle | undefined;
  private listener: (() => void) | undefined;
  private closed = false;
  private readonly slice: number;
  private readonly retryMs: number;
  /** Source failures seen (the grant counted as 0). */
  failures = 0;

  constructor(private readonly o: QuotaLeaseOptions) {
    this.slice = Math.ceil(positive("sliceBytes", o.sliceBytes));
    this.retryMs = positive("retryMs", o.retryMs ?? 20);
  }

  /** Bytes held locally and not spent yet. */
  get held(): number {
    return this.pool;
  }

  onRefill(fn: () => void): void {
    this.listener = fn;
  }

  /** Spends `bytes` from the pool if it holds them; otherwise starts a refill and returns false. */
  take(bytes: number): boolean {
    if (this.pool >= bytes) {
      this.pool -= bytes;
      if (this.pool < this.slice / 2) this.refill();
      return true;
    }
    this.refill();
    // A source that answers synchronously may have filled the pool just now.
    if (this.pool >= bytes) {
      this.pool -= bytes;
      return true;
    }
    return false;
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private refill(): void {
    if (this.inFlight || this.timer !== undefined || this.closed) return;
    this.inFlight = true;
    const spec = this.o.spec();
    if (spec === null) {
      this.inFlight = false;
      return;
    }
    let got: number | Promise<number>;
    try {
      got = this.o.source.take(this.o.key, this.slice, spec);
    } catch {
      got = -1;
    }
    if (typeof got === "number") this.settle(got);
    else got.then((n) => this.settle(n), () => this.settle(-1));
  }

  private settle(granted: number): void {
    this.inFlight = false;
    if (this.closed) return;
    if (!(granted > 0)) {
      if (granted < 0 || Number.isNaN(granted)) this.failures++;
      // A random wait: instances that all retry on the same period would
      // lock into phase, and the one whose retry lands first after the
      // shared bucket refills would get every slice.
      const wait = this.retryMs * (0.5 + (this.o.rng ?? systemRng).next());
      this.timer = this.o.clock.setTimer(() => {
        this.timer = undefined;
        this.refill();
      }, wait);
      return;
    }
    this.pool += Math.min(granted, this.slice);
    this.listener?.();
  }
}
