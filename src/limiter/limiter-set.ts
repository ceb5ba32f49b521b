import { InvalidArgumentError } from "../core/errors.js";
import { cost as validCost } from "../core/validate.js";
import type { Decision } from "./decision.js";
import type { RateLimiter } from "./rate-limiter.js";

export interface CompositeDecision {
  /** True only when every enforced limit allowed. */
  readonly allowed: boolean;
  /** Longest wait among the rejecting limits (0 when allowed). */
  readonly retryAfterMs: number;
  /** Name of the first enforced limit that rejected. */
  readonly rejectedBy: string | undefined;
  /** One decision per limit, in the set's order (limits after a rejection are not checked). */
  readonly decisions: readonly Decision[];
}

/**
 * Several limits checked as one (per-IP AND per-user AND global). A check
 * either consumes from every limit or from none: when one rejects, the
 * limits already charged get their previous state back.
 */
export class LimiterSet {
  private readonly undo: Float64Array[];

  constructor(readonly limiters: readonly RateLimiter[]) {
    if (limiters.length === 0) throw new InvalidArgumentError("limiters", "must name at least one limit");
    this.undo = limiters.map((l) => new Float64Array(l.spec.algorithm.width));
  }

  /** `keys[i]` is the key for `limiters[i]` (for example [ip, user, "global"]). */
  check(keys: readonly string[], cost = 1): CompositeDecision {
    if (keys.length !== this.limiters.length) {
      throw new InvalidArgumentError("keys", `expected ${this.limiters.length} keys, got ${keys.length}`);
    }
    if (cost !== 1) validCost(cost);
    // Validate every key before charging any limit: a throw halfway would leave the first ones charged.
    for (let i = 0; i < keys.length; i++) {
      if (typeof keys[i] !== "string") throw new InvalidArgumentError(`keys[${i}]`, "must be a string");
    }
    const decisions: Decision[] = [];
    for (let i = 0; i < this.limiters.length; i++) {
      const l = this.limiters[i]!;
      const key = keys[i]!;
      const d = l.consumeUndoable(key, cost, l.now(), this.undo[i]!);
      decisions.push(d);
      if (!d.allowed) {
        for (let j = i - 1; j >= 0; j--) this.limiters[j]!.undo(keys[j]!, this.undo[j]!);
        return { allowed: false, retryAfterMs: d.retryAfterMs, rejectedBy: l.name, decisions };
      }
    }
    return { allowed: true, retryAfterMs: 0, rejectedBy: undefined, decisions };
  }
}
