/** Places held in a shared store by the waiters of a fixed window's queue. */
import type { Clock } from "../core/clock.js";
import type { Store } from "../stores/store.js";
import { ConcurrencyLimiter, type Lease } from "./concurrency-limiter.js";

/** Places in a queue held on a shared store: what one waiter holds while it waits. */
export interface QueueSeat {
  /** Frees the places (idempotent; never rejects); resolves once the store answered. */
  release(): Promise<void>;
  /** Pushes the places' expiry back (a waiter still waiting after a window). */
  renew(): void;
}

/** Where a fixed window's queue counts its waiters when the window's counts are shared. */
export interface QueueSeats {
  /** Takes `cost` places for `key`; undefined when the queue is full across every instance. */
  take(key: string, cost: number): Promise<QueueSeat | undefined>;
}

export interface SharedQueueSeatsOptions {
  /** Name of the lease table (the limit's name plus a suffix). */
  name: string;
  /** Most places per key across every instance: the queue limit. */
  limit: number;
  /**
   * A place not renewed within this time frees itself: a waiter renews at
   * every window it is not admitted in, so this is what frees the places of
   * an instance that stopped while requests waited in it.
   */
  ttlMs: number;
  store: Store<boolean>;
  clock?: Clock;
}

/**
 * The queue limit counted on the store: each waiter holds one concurrency
 * lease per permit it waits for, so instances sharing the store share
 * `queueLimit` and not one each. Waiting itself stays in the instance that
 * queued the request (a promise and a timer); only taking, renewing and
 * freeing a place go to the store.
 */
export class SharedQueueSeats implements QueueSeats {
  private readonly leases: ConcurrencyLimiter<boolean>;

  constructor(o: SharedQueueSeatsOptions) {
    this.leases = new ConcurrencyLimiter<boolean>({
      name: o.name,
      limit: o.limit,
      leaseTtlMs: o.ttlMs,
      store: o.store,
      ...(o.clock === undefined ? {} : { clock: o.clock }),
    });
  }

  async take(key: string, cost: number): Promise<QueueSeat | undefined> {
    const held: Lease<boolean>[] = [];
    for (let i = 0; i < cost; i++) {
      const r = await this.leases.tryAcquire(key);
      if (!r.decision.allowed || r.lease === undefined) {
        await Promise.all(held.map((l) => quietly(() => l.release())));
        return undefined;
      }
      held.push(r.lease);
    }
    let released: Promise<void> | undefined;
    return {
      release: () => (released ??= Promise.all(held.map((l) => quietly(() => l.release()))).then(() => undefined)),
      renew: () => {
        if (released === undefined) for (const l of held) void quietly(() => l.renew());
      },
    };
  }
}

/** Runs a lease operation that must not fail its caller: a store that fails already answers through its failure mode. */
async function quietly(f: () => unknown): Promise<void> {
  try {
    await f();
  } catch {
    // A lease that cannot be freed expires with its TTL.
  }
}
