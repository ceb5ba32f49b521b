/**
 * Keeps the concurrency leases of live connections alive on a shared store.
 *
 * On a shared store a lease carries a TTL: if the process holding it dies,
 * nobody releases it, and the TTL is what gives the slot back to the fleet.
 * While the connection lives the lease must therefore be renewed. One timer
 * renews every held lease each third of the TTL (so two renewals may fail
 * or arrive late before a lease lapses), armed only while leases are held.
 *
 * A live connection must keep counting after an outage. A lease the store
 * no longer holds (it lapsed while the store could not be reached, or Redis
 * restarted empty) and a slot the failure mode handed out during the outage
 * (a local insurance slot, or none when open) are taken again in the store
 * as soon as it answers: at the next renewal, and at once when the store
 * reports its return (`renewNow`). A re-take is an ordinary acquire: if the
 * cap filled meanwhile, the connection is not counted until a slot frees,
 * and the next renewal tries again.
 */
import type { Clock, TimerHandle } from "../../core/clock.js";
import { type Lease, isFallbackLease } from "../../limiter/concurrency-limiter.js";

/** What the guard hands out for an admitted connection (its Admission, declared here to keep the modules acyclic). */
export interface RenewedAdmission {
  readonly key: string;
  readonly exempt: false;
  release(): void;
}

/** One slot of a connection: its lease now, and how to take the slot again in the store. */
export interface HeldSlot {
  lease: Lease<false>;
  /** Asks the store for a slot of the same limit and key; undefined when refused. */
  readonly retake: () => Promise<Lease<false> | undefined>;
}

interface Slot extends HeldSlot {
  released: boolean;
  retaking: boolean;
}

export class LeaseRenewer {
  private readonly held = new Set<Slot>();
  private timer: TimerHandle | undefined;
  private closed = false;

  constructor(
    private readonly clock: Clock,
    readonly ttlMs: number,
    /** Whether the store answers now (not its failure mode): only then is a lost slot taken again. */
    private readonly storeAnswers: () => boolean = () => true,
    /** Ends a connection's leases (together, in one store call where the store can). */
    private readonly releaseAll: (leases: Lease<false>[]) => void = (leases) => {
      for (const l of leases) void l.release();
    },
  ) {}

  /** Leases renewed now. */
  get size(): number {
    return this.held.size;
  }

  /** An admission holding `slots`: their leases are renewed (or taken again) until it is released. */
  admission(key: string, slots: readonly HeldSlot[]): RenewedAdmission {
    const mine: Slot[] = slots.map((s) => ({ lease: s.lease, retake: s.retake, released: false, retaking: false }));
    for (const s of mine) this.held.add(s);
    this.arm();
    let released = false;
    return {
      key,
      exempt: false,
      release: () => {
        if (released) return;
        released = true;
        for (const s of mine) {
          s.released = true;
          this.held.delete(s);
        }
        this.releaseAll(mine.map((s) => s.lease));
      },
    };
  }

  /** A renewal round now (the store is back: lost slots are taken again without waiting for the timer). */
  renewNow(): void {
    if (this.closed) return;
    this.timer?.cancel();
    this.timer = undefined;
    this.renew();
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private arm(): void {
    // Leases without a TTL (ttlMs = Infinity) have nothing to renew.
    if (this.timer !== undefined || this.closed || this.held.size === 0 || this.ttlMs === Infinity) return;
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      this.renew();
    }, Math.max(1, Math.floor(this.ttlMs / 3)));
  }

  private renew(): void {
    // Sent together: the store pipelines them. A failure is the store's to report; the lease TTL is the safety net.
    for (const s of this.held) {
      if (s.retaking) continue;
      if (isFallbackLease(s.lease)) {
        if (this.storeAnswers()) void this.retake(s);
        else void s.lease.renew();
        continue;
      }
      const lease = s.lease;
      void lease.renew().then((ok) => {
        if (!ok && s.lease === lease && !s.released && this.storeAnswers()) void this.retake(s);
      });
    }
    this.arm();
  }

  /** Takes the slot again in the store; the old lease (a lapsed one, or the failure mode's) is let go. */
  private async retake(s: Slot): Promise<void> {
    if (s.retaking || s.released || this.closed) return;
    s.retaking = true;
    try {
      const fresh = await s.retake();
      if (fresh === undefined) return;
      // Refused by the store's failure mode again, or the connection ended meanwhile: keep nothing.
      if (isFallbackLease(fresh) || s.released || this.closed) {
        void fresh.release();
        return;
      }
      const old = s.lease;
      s.lease = fresh;
      void old.release();
    } catch {
      // The next renewal tries again.
    } finally {
      s.retaking = false;
    }
  }
}
