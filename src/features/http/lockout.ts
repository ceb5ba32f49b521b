/**
 * Subject lockout: an account (user name or client id) that fails
 * `maxFailures` times within `windowMs` is locked for `durationMs`, whatever
 * IP the attempts come from; each further lockout lasts `multiplier` times
 * the previous one, up to `maxDurationMs`. A success clears the subject's
 * record, escalation included. The lock may be far longer than the window
 * (an hour for a one-minute rule): the lock end and the failure window are
 * separate numbers of state.
 *
 * Built on the engine's PenaltyBox (bounded, evicts the least dangerous
 * subject first) with its per-failure back-off switched off: a lockout is a
 * threshold, not a slope.
 */
import type { Clock } from "../../core/clock.js";
import { integerAtLeast, positive } from "../../core/validate.js";
import type { Decision } from "../../limiter/decision.js";
import { PenaltyBox } from "../../limiter/penalty-box.js";
import { then } from "../../limiter/reply.js";
import type { Reply, Store } from "../../stores/store.js";
import type { LockoutConfig } from "./types.js";
import type { ProfileSettings } from "./profiles.js";

/** Longest subject tracked; longer ones are cut (bounded memory per subject). */
const MAX_SUBJECT = 256;

export interface LockoutFailure {
  /** This failure locked the subject. */
  locked: boolean;
  /** Monotonic clock time the lock ends (-Infinity when not locked). */
  lockedUntil: number;
  /** Failures in the subject's current streak. */
  failures: number;
}

/**
 * On a shared store (Redis) the subjects' records live there: a subject
 * locked out through one instance is locked out at every instance, and the
 * box reads the store's clock. On the memory store every answer is
 * synchronous.
 */
export class Lockout<S extends boolean = true> {
  readonly sync: S;
  readonly maxFailures: number;
  readonly windowMs: number;
  readonly durationMs: number;
  private readonly box: PenaltyBox<S>;
  private readonly caseSensitive: boolean;

  /**
   * `clock` drives a box on a store without a clock of its own (memory);
   * `store` defaults to a memory store of the box's own; `name` is the box's
   * name in a shared store (instances with the same name share the locks).
   */
  constructor(o: LockoutConfig, profile: ProfileSettings, clock: Clock, store?: Store<S>, name = "http-lockout") {
    this.maxFailures = integerAtLeast("lockout.maxFailures", o.maxFailures ?? profile.lockoutMaxFailures, 1);
    this.windowMs = positive("lockout.windowMs", o.windowMs ?? profile.lockoutWindowMs);
    this.durationMs = positive("lockout.durationMs", o.durationMs ?? profile.lockoutDurationMs);
    this.caseSensitive = o.caseSensitive ?? false;
    const maxDuration = positive("lockout.maxDurationMs", o.maxDurationMs ?? Math.max(24 * 3_600_000, this.durationMs));
    this.box = new PenaltyBox<S>({
      // A store with its own clock is read by every instance alike; a local clock would differ per process.
      ...(store?.storeTime ? {} : { clock }),
      ...(store === undefined ? {} : { store, name }),
      shadow: o.shadow ?? false,
      maxKeys: o.maxSubjects ?? 65_536,
      // No back-off between single failures: only the threshold locks.
      throttleAfter: Number.MAX_SAFE_INTEGER,
      backoffBaseMs: 0,
      backoffMaxMs: 0,
      banFailures: this.maxFailures,
      banWindowMs: this.windowMs,
      banDurationMs: this.durationMs,
      banMultiplier: o.multiplier ?? 2,
      banMaxMs: maxDuration,
      // Escalation needs the record to outlive the lock it caused.
      retentionMs: positive("lockout.retentionMs", o.retentionMs ?? Math.max(24 * 3_600_000, maxDuration)),
    });
    this.sync = this.box.sync;
  }

  /** Whether `subject` may try now (allowed, or rejected with the wait until its lock ends). */
  check(subject: string): Reply<S, Decision> {
    return this.box.check(this.norm(subject));
  }

  /**
   * The form a subject is tracked under: cut to a bounded length, and
   * lower-cased unless configured otherwise, so that "Alice" and "alice" are
   * one account (most login systems treat them so, and an attacker would
   * otherwise get a fresh count per spelling).
   */
  norm(subject: string): string {
    const s = subject.length > MAX_SUBJECT ? subject.slice(0, MAX_SUBJECT) : subject;
    return this.caseSensitive ? s : s.toLowerCase();
  }

  recordFailure(raw: string): Reply<S, LockoutFailure> {
    const subject = this.norm(raw);
    // Failures while locked do not count: they could not have been tried,
    // and counting them would re-lock the subject the moment its lock ends.
    return then(this.sync, this.box.status(subject), (st): LockoutFailure | Reply<S, LockoutFailure> => {
      if (st.bannedUntil > this.box.now()) return { locked: false, lockedUntil: st.bannedUntil, failures: st.streak };
      return then(this.sync, this.box.recordFailure(subject), (r) => ({ locked: r.banned, lockedUntil: r.bannedUntil, failures: r.streak }));
    }) as Reply<S, LockoutFailure>;
  }

  /**
   * Clears the subject's failures and escalation. A success reported while
   * the subject is locked is ignored: the lock stands until it ends (or an
   * operator calls `unlock`).
   */
  recordSuccess(raw: string): Reply<S, void> {
    const subject = this.norm(raw);
    return then(this.sync, this.box.status(subject), (st): void | Reply<S, void> => {
      if (st.bannedUntil > this.box.now()) return;
      return this.box.recordSuccess(subject);
    }) as Reply<S, void>;
  }

  /** Lifts a lock and forgets the subject. */
  unlock(subject: string): Reply<S, boolean> {
    return this.box.forget(this.norm(subject));
  }

  /** Locks a subject by hand (for `durationMs`, or the escalating length). */
  lock(subject: string, durationMs?: number): Reply<S, number> {
    return this.box.ban(this.norm(subject), durationMs);
  }

  /** Subjects tracked now. */
  get size(): number {
    return this.box.size;
  }

  /**
   * On a shared store: subscribes to the locks and unlocks of every
   * instance (they land in this instance's cache within milliseconds, so a
   * lock lifted elsewhere is not still refused here from the cache) and
   * loads the live locks. False if the store did not answer within
   * `timeoutMs` (the subscription completes in the background). Resolves
   * true at once on the memory store.
   */
  start(timeoutMs?: number): Promise<boolean> {
    return this.box.start(timeoutMs);
  }

  /** Ends `start()`'s subscription and the box's ties to the store (the store stays open). */
  close(): Promise<void> {
    return this.box.close();
  }
}
