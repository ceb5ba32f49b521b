/**
 * A bounded, fair gate in front of password hashing. At most `concurrency`
 * verifications run at once (each holds one thread of libuv's pool for the
 * length of a scrypt run), at most `maxQueued` wait, and none waits longer
 * than `maxWaitMs`. Two classes wait apart: `trusted` (an address that
 * logged in recently, or a client with a valid certificate) is always served
 * before `unknown`, and when the queue is full a trusted request takes the
 * place of the newest unknown one. Work whose connection closed while it
 * waited (its AbortSignal fired) is dropped before it starts: a flood that
 * gives up costs nothing once it is gone.
 */
import type { Clock, TimerHandle } from "../../core/clock.js";

export type VerificationPriority = "trusted" | "unknown";
/** Why a verification never ran. */
export type VerificationDrop = "queue_full" | "closed" | "timeout";
export const VERIFICATION_DROPS: readonly VerificationDrop[] = ["queue_full", "closed", "timeout"];

export type GateOutcome<T> = { ran: true; value: T; waitedMs: number } | { ran: false; reason: VerificationDrop };

export interface GateLimits {
  /** Verifications running at once (>= 1). */
  concurrency: number;
  /** Verifications waiting at once (>= 0). */
  maxQueued: number;
  /** Longest wait before a verification starts. */
  maxWaitMs: number;
}

export interface GateObserver {
  /** A verification started after waiting `ms` (0 when it did not wait). */
  waited?(ms: number, priority: VerificationPriority): void;
  dropped?(reason: VerificationDrop, priority: VerificationPriority): void;
}

interface Waiter {
  priority: VerificationPriority;
  queuedAt: number;
  start(): void;
  drop(reason: VerificationDrop): void;
}

export class VerificationGate {
  private active = 0;
  // Sets keep insertion order and delete in O(1): FIFO queues from which a closed connection's entry leaves at once.
  private readonly trusted = new Set<Waiter>();
  private readonly unknown = new Set<Waiter>();

  constructor(
    private limits: GateLimits,
    private readonly clock: Clock,
    private readonly observer: GateObserver = {},
  ) {}

  /** Verifications running now. */
  get running(): number {
    return this.active;
  }

  /** Verifications waiting now. */
  get queued(): number {
    return this.trusted.size + this.unknown.size;
  }

  /** New limits; a smaller queue drops the newest unknown waiters beyond it. Running work is not touched. */
  configure(limits: GateLimits): void {
    this.limits = limits;
    while (this.queued > limits.maxQueued && this.unknown.size > 0) this.newestUnknown()!.drop("queue_full");
    while (this.queued > limits.maxQueued) this.newest(this.trusted)!.drop("queue_full");
    this.pump();
  }

  /**
   * Runs `work` when a slot is free, or answers why it never ran. A rejection
   * of `work` is passed on to the caller; the slot is freed either way.
   */
  run<T>(work: () => Promise<T>, o: { priority: VerificationPriority; signal?: AbortSignal }): Promise<GateOutcome<T>> {
    const { priority, signal } = o;
    if (signal?.aborted) return Promise.resolve(this.dropNow("closed", priority));
    if (this.active < this.limits.concurrency && this.queued === 0) {
      this.observer.waited?.(0, priority);
      return this.execute(work, 0);
    }
    if (this.queued >= this.limits.maxQueued) {
      const victim = priority === "trusted" ? this.newestUnknown() : undefined;
      if (victim === undefined) return Promise.resolve(this.dropNow("queue_full", priority));
      victim.drop("queue_full");
    }
    return new Promise<GateOutcome<T>>((resolve, reject) => {
      const queue = priority === "trusted" ? this.trusted : this.unknown;
      const leave = (): void => {
        queue.delete(waiter);
        timer.cancel();
        signal?.removeEventListener("abort", onAbort);
      };
      const waiter: Waiter = {
        priority,
        queuedAt: this.clock.now(),
        start: () => {
          leave();
          const waitedMs = this.clock.now() - waiter.queuedAt;
          this.observer.waited?.(waitedMs, priority);
          this.execute(work, waitedMs).then(resolve, reject);
        },
        drop: (reason) => {
          leave();
          resolve(this.dropNow(reason, priority));
        },
      };
      const onAbort = (): void => waiter.drop("closed");
      queue.add(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
      // Declared last: leave() can only run after this line (no timer or abort fires synchronously).
      const timer: TimerHandle = this.clock.setTimer(() => waiter.drop("timeout"), this.limits.maxWaitMs);
    });
  }

  private async execute<T>(work: () => Promise<T>, waitedMs: number): Promise<GateOutcome<T>> {
    this.active++;
    try {
      return { ran: true, value: await work(), waitedMs };
    } finally {
      this.active--;
      this.pump();
    }
  }

  /** Starts waiters while slots are free: trusted first, each class in arrival order. */
  private pump(): void {
    while (this.active < this.limits.concurrency) {
      const next = this.first(this.trusted) ?? this.first(this.unknown);
      if (next === undefined) return;
      next.start();
    }
  }

  private dropNow(reason: VerificationDrop, priority: VerificationPriority): GateOutcome<never> {
    this.observer.dropped?.(reason, priority);
    return { ran: false, reason };
  }

  private first(q: Set<Waiter>): Waiter | undefined {
    return q.values().next().value;
  }

  private newestUnknown(): Waiter | undefined {
    return this.newest(this.unknown);
  }

  private newest(q: Set<Waiter>): Waiter | undefined {
    let last: Waiter | undefined;
    // Bounded by maxQueued; only walked when the queue is full.
    for (const w of q) last = w;
    return last;
  }
}
