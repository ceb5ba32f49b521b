/**
 * An async store that fails on demand: a MemoryStore behind promises, whose
 * every operation answers FAILED while `down` is set. It reports its failure
 * mode like Redis and the message store do, so the limiters' failure modes
 * (written once, in src/limiter/failure-modes.ts) can be tested without
 * killing anything.
 */
import type { LimitSpec } from "../../src/algorithms/limit-spec.js";
import { Outcome } from "../../src/algorithms/outcome.js";
import type { PenaltyParams } from "../../src/algorithms/penalty-box.js";
import {
  FAILED,
  type Failed,
  type FailureMode,
  type LeaseTable,
  type LeaseTableOptions,
  MemoryStore,
  type PenaltyTable,
  type PenaltyTableOptions,
  type RateOp,
  type RateTable,
  type Store,
  type StoreFailure,
} from "../../src/index.js";

export class FailingStore implements Store<false>, StoreFailure {
  readonly sync = false as const;
  readonly kind = "failing";
  readonly storeTime = false;
  readonly insurance = new MemoryStore();
  /** While true every operation answers FAILED. */
  down = false;
  fallbacks = 0;
  private readonly inner = new MemoryStore();

  constructor(
    readonly failureMode: FailureMode,
    readonly expectedInstances = 2,
    readonly probeIntervalMs = 250,
  ) {}

  get failure(): StoreFailure {
    return this;
  }

  countFallback(): void {
    this.fallbacks++;
  }

  generateName(prefix: string): string {
    return this.inner.generateName(prefix);
  }

  private async guard<T>(f: () => T): Promise<T | Failed> {
    await Promise.resolve();
    return this.down ? FAILED : f();
  }

  rateTable(name: string, spec: LimitSpec): RateTable<false> & { inner: RateTable<true> } {
    const inner = this.inner.rateTable(name, spec);
    return {
      name,
      spec,
      inner,
      consume: (k, c, n) => this.guard(() => inner.consume(k, c, n, new Outcome())),
      peek: (k, c, n) => this.guard(() => inner.peek(k, c, n, new Outcome())),
      delete: async (k) => {
        await this.guard(() => inner.delete(k));
      },
    };
  }

  rateAll(ops: readonly RateOp<false>[]): Promise<Outcome[] | Failed> {
    return this.guard(() => this.inner.rateAll(ops.map((o) => ({ ...o, table: (o.table as unknown as { inner: RateTable<true> }).inner }))));
  }

  leaseTable(name: string, o: LeaseTableOptions): LeaseTable<false> {
    const inner = this.inner.leaseTable(name, o);
    return {
      name,
      acquire: (k, n) => this.guard(() => inner.acquire(k, n)),
      release: (k, id, n) => this.guard(() => inner.release(k, id, n)),
      renew: (k, id, n) => this.guard(() => inner.renew(k, id, n)),
      held: (k, n) => this.guard(() => inner.held(k, n)),
      delete: async (k) => {
        await this.guard(() => inner.delete(k));
      },
    };
  }

  penaltyTable(name: string, params: PenaltyParams, o?: PenaltyTableOptions): PenaltyTable<false> {
    const inner = this.inner.penaltyTable(name, params, o);
    return {
      name,
      params,
      check: (k, n) => this.guard(() => inner.check(k, n)),
      status: (k, n) => this.guard(() => inner.status(k, n)),
      failure: (k, n) => this.guard(() => inner.failure(k, n)),
      ban: (k, d, n) => this.guard(() => inner.ban(k, d, n)),
      forget: (k) => this.guard(() => inner.forget(k)),
      banned: (n) => this.guard(() => inner.banned(n)),
      isBanned: (k, n) => !this.down && inner.isBanned(k, n),
      onBanEvent: (l) => inner.onBanEvent(l),
    };
  }
}
