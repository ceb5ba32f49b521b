/**
 * What the stores whose state lives elsewhere (Redis, a host process) share:
 * their deadline and failure options, the insurance store that answers while
 * the backend does not, and the health that switches between the two.
 */
import { InvalidArgumentError } from "../core/errors.js";
import { integerAtLeast, positive } from "../core/validate.js";
import { MemoryStore } from "./memory-store.js";
import type { FailureMode, StoreFailure } from "./store.js";
import { type HealthCounters, type StoreEvents, type StoreMode, StoreHealth } from "./store-health.js";

export interface RemoteStoreOptions {
  /** Deadline of every call to the backend in ms (default 50 for Redis, 100 for a host process). */
  timeoutMs?: number;
  /** What decides while the backend does not answer (default "insurance"). */
  onFailure?: FailureMode;
  /** Processes sharing the backend; insurance limits are the real ones divided by it (default 2). */
  expectedInstances?: number;
  /** How often the backend is pinged while it does not answer, in ms (default 250). */
  probeIntervalMs?: number;
  /** Most operations waiting on the backend at once; beyond it decisions fall back at once (default 20,000). */
  maxInFlight?: number;
  /** Most keys each insurance limit tracks locally (default 100,000). */
  insuranceMaxKeys?: number;
}

export abstract class RemoteStore<Up extends string> implements StoreFailure {
  readonly timeoutMs: number;
  readonly expectedInstances: number;
  readonly probeIntervalMs: number;
  /** Local state of the insurance limits (bounded, shared by this store's limits). */
  readonly insurance: MemoryStore;
  protected readonly health: StoreHealth<Up>;
  protected readonly maxInFlight: number;
  private unnamed = 0;

  protected constructor(o: RemoteStoreOptions, defaultTimeoutMs: number, events: StoreEvents<Up>, up: Up) {
    this.timeoutMs = positive("timeoutMs", o.timeoutMs ?? defaultTimeoutMs);
    this.expectedInstances = integerAtLeast("expectedInstances", o.expectedInstances ?? 2, 1);
    this.probeIntervalMs = positive("probeIntervalMs", o.probeIntervalMs ?? 250);
    this.maxInFlight = integerAtLeast("maxInFlight", o.maxInFlight ?? 20_000, 1);
    const mode = o.onFailure ?? "insurance";
    if (mode !== "insurance" && mode !== "open" && mode !== "closed") {
      throw new InvalidArgumentError("onFailure", `must be "insurance", "open" or "closed", got ${String(mode)}`);
    }
    this.insurance = new MemoryStore({ maxKeys: integerAtLeast("insuranceMaxKeys", o.insuranceMaxKeys ?? 100_000, 1) });
    this.health = new StoreHealth(mode, this.probeIntervalMs, () => this.ping(), events, up);
  }

  /** Resolves whether the backend answers (the health's probe). */
  protected abstract ping(): Promise<boolean>;

  /** The store's failure mode, as the limiters read it. */
  get failure(): StoreFailure {
    return this;
  }

  /** The backend's name while it answers, or the failure mode answering while it does not. */
  get mode(): StoreMode<Up> {
    return this.health.mode;
  }

  get failureMode(): FailureMode {
    return this.health.failureMode;
  }

  get counters(): Readonly<HealthCounters> {
    return this.health.counters;
  }

  /** @internal Counts a decision answered by the failure mode. */
  countFallback(): void {
    this.health.counters.fallbackDecisions++;
  }

  /** A limit name not used by this store instance yet. */
  generateName(prefix: string): string {
    return `${prefix}-${++this.unnamed}`;
  }
}
