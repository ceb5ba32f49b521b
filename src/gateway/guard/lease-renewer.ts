/**
 * Keeps the concurrency leases of live connections alive on a shared store.
 *
 * On a shared store a lease carries a TTL: if the process holding it dies,
 * nobody releases it, and the TTL is what gives the slot back to the fleet.
 * While the connection lives the lease must therefore be renewed. One timer
 * renews every held lease each third of the TTL (so two renewals may fail
 * or arrive late before a lease lapses), armed only while leases are held.
 * A renewal the store refuses (the lease lapsed during an outage) leaves the
 * connection open: it just no longer counts against the cap.
 */
import type { Clock, TimerHandle } from "../../core/clock.js";
import type { Lease } from "../../limiter/concurrency-limiter.js";

/** What the guard hands out for an admitted connection (its Admission, declared here to keep the modules acyclic). */
export interface RenewedAdmission {
  readonly key: string;
  readonly exempt: false;
  release(): void;
}

export class LeaseRenewer {
  private readonly held = new Set<Lease<false>>();
  private timer: TimerHandle | undefined;
  private closed = false;

  constructor(
    private readonly clock: Clock,
    readonly ttlMs: number,
  ) {}

  /** Leases renewed now. */
  get size(): number {
    return this.held.size;
  }

  /** An admission holding `leases`: they are renewed until it is released. */
  admission(key: string, leases: readonly Lease<false>[]): RenewedAdmission {
    for (const l of leases) this.held.add(l);
    this.arm();
    let released = false;
    return {
      key,
      exempt: false,
      release: () => {
        if (released) return;
        released = true;
        for (const l of leases) {
          this.held.delete(l);
          void l.release();
        }
      },
    };
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private arm(): void {
    // Leases without a TTL (ttlMs = Infinity) have nothing to renew.
    if (this.timer !== undefined || this.closed || this.held.size === 0 || this.ttlMs === Infinity) return;
    this.timer = this.clock.setTimer(() => this.renew(), Math.max(1, Math.floor(this.ttlMs / 3)));
  }

  private renew(): void {
    this.timer = undefined;
    // Sent together: the store pipelines them. A failure is the store's to report; the lease TTL is the safety net.
    for (const l of this.held) void l.renew();
    this.arm();
  }
}
