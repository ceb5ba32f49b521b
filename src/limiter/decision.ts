/** The Decision: the answer of one limit check, with its remaining count and its waits. */
import type { RejectReason } from "../algorithms/outcome.js";
import { inRange } from "../core/validate.js";

export type { RejectReason };

/**
 * The answer of one check. `retryAfterMs` is the earliest wait after which
 * the same check succeeds (0 when allowed, and 0 for `insufficient_capacity`,
 * which never succeeds). `shadowed` marks a check that the limit would have
 * rejected but let through because it runs in shadow mode; `reason` then
 * says what it would have been. Built only by `decide` (below).
 */
export class Decision {
  /** @internal Use `decide`. */
  constructor(
    readonly allowed: boolean,
    readonly remaining: number,
    readonly limit: number,
    readonly resetMs: number,
    readonly retryAfterMs: number,
    readonly reason: RejectReason | undefined,
    /** Remaining is at or below the limit's near-limit share (default 20%); for a limit without capacity (penalty box), rejected. */
    readonly nearLimit: boolean,
    readonly shadowed: boolean,
  ) {}
}

/** What a decision is made of: an Outcome, or any record with its fields. */
export interface OutcomeView {
  readonly allowed: boolean;
  readonly remaining: number;
  readonly resetMs: number;
  readonly retryAfterMs: number;
  readonly reason: RejectReason | undefined;
}

/** How a limit turns outcomes into decisions: its capacity, near-limit threshold and shadow mode. */
export interface DecisionPolicy {
  /** Reported as Decision.limit (0 for a limit without capacity, such as the penalty box). */
  readonly limit: number;
  /**
   * An allowed decision whose remaining is at or below this is near the
   * limit: limit × nearLimitRatio, or -1 for a limit without capacity
   * (never near while it allows). Use `decisionPolicy` to derive it.
   */
  readonly nearThreshold: number;
  readonly shadow: boolean;
}

export function decisionPolicy(limit: number, nearLimitRatio: number | undefined, shadow: boolean | undefined): DecisionPolicy {
  const share = nearLimitShare(nearLimitRatio);
  // The capacity test folded into the threshold: the allowing path of
  // decide() is one comparison (a double compare per check otherwise).
  return { limit, nearThreshold: limit > 0 ? limit * share : -1, shadow: shadow ?? false };
}

/** Validates the near-limit share (remaining / limit at or below which a decision is flagged). */
export function nearLimitShare(v: number | undefined): number {
  return inRange("nearLimitRatio", v ?? 0.2, 0, 1);
}

/**
 * The one place a Decision is built. Shadow mode: a rejection is reported
 * (reason, remaining, resetMs) but allowed, with no Retry-After. Near the
 * limit: remaining at or below the policy's threshold; a limit without
 * capacity is near its limit exactly when it rejects.
 */
export function decide(o: OutcomeView, p: DecisionPolicy): Decision {
  // Read once: an algorithm may derive it on read (see Outcome.remaining).
  const remaining = o.remaining;
  const limit = p.limit;
  // An allowed outcome has no Retry-After and no reason: the common path reads neither.
  if (o.allowed) return new Decision(true, remaining, limit, o.resetMs, 0, undefined, remaining <= p.nearThreshold, false);
  const near = limit > 0 ? remaining <= p.nearThreshold : true;
  if (p.shadow) return new Decision(true, remaining, limit, o.resetMs, 0, o.reason, near, true);
  return new Decision(false, remaining, limit, o.resetMs, o.retryAfterMs, o.reason, near, false);
}

/** An allowed outcome record (for answers that are not a transition's: open failure mode, an unknown key). */
export function allowed(remaining: number, resetMs = 0): OutcomeView {
  return { allowed: true, remaining, resetMs, retryAfterMs: 0, reason: undefined };
}

/** A rejected outcome record whose reset and Retry-After are both `waitMs`. */
export function rejected(reason: RejectReason, waitMs: number, remaining = 0): OutcomeView {
  return { allowed: false, remaining, resetMs: waitMs, retryAfterMs: waitMs, reason };
}
