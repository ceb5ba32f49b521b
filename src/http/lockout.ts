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
import type { Clock } from "../core/clock.js";
import { integerAtLeast, positive } from "../core/validate.js";
import type { Decision } from "../limiter/decision.js";
import { PenaltyBox } from "../limiter/penalty-box.js";
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

export class Lockout {
  readonly maxFailures: number;
  readonly windowMs: number;
  readonly durationMs: number;
  private readonly box: PenaltyBox;
  private readonly caseSensitive: boolean;

  constructor(o: LockoutConfig, profile: ProfileSettings, clock: Clock) {
    this.maxFailures = integerAtLeast("lockout.maxFailures", o.maxFailures ?? profile.lockoutMaxFailures, 1);
    this.windowMs = positive("lockout.windowMs", o.windowMs ?? profile.lockoutWindowMs);
    this.durationMs = positive("lockout.durationMs", o.durationMs ?? profile.lockoutDurationMs);
    this.caseSensitive = o.caseSensitive ?? false;
    const maxDuration = positive("lockout.maxDurationMs", o.maxDurationMs ?? Math.max(24 * 3_600_000, this.durationMs));
    this.box = new PenaltyBox({
      clock,
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
  }

  /** Whether `subject` may try now (allowed, or rejected with the wait until its lock ends). */
  check(subject: string): Decision {
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

  recordFailure(raw: string): LockoutFailure {
    const subject = this.norm(raw);
    // Failures while locked do not count: they could not have been tried,
    // and counting them would re-lock the subject the moment its lock ends.
    const st = this.box.status(subject);
    if (st.bannedUntil > this.box.now()) return { locked: false, lockedUntil: st.bannedUntil, failures: st.streak };
    const r = this.box.recordFailure(subject);
    return { locked: r.banned, lockedUntil: r.bannedUntil, failures: r.streak };
  }

  /**
   * Clears the subject's failures and escalation. A success reported while
   * the subject is locked is ignored: the lock stands until it ends (or an
   * operator calls `unlock`).
   */
  recordSuccess(raw: string): void {
    const subject = this.norm(raw);
    const st = this.box.status(subject);
    if (st.bannedUntil > this.box.now()) return;
    this.box.recordSuccess(subject);
  }

  /** Lifts a lock and forgets the subject. */
  unlock(subject: string): boolean {
    return this.box.forget(this.norm(subject));
  }

  /** Locks a subject by hand (for `durationMs`, or the escalating length). */
  lock(subject: string, durationMs?: number): number {
    return this.box.ban(this.norm(subject), durationMs);
  }

  /** Subjects tracked now. */
  get size(): number {
    return this.box.size;
  }
}
