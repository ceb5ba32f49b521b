import type { RejectReason } from "../algorithms/outcome.js";

export type { RejectReason };

/**
 * The answer of one check. `retryAfterMs` is the earliest wait after which
 * the same check succeeds (0 when allowed, and 0 for `insufficient_capacity`,
 * which never succeeds). `shadowed` marks a check that the limit would have
 * rejected but let through because it runs in shadow mode; `reason` then
 * says what it would have been.
 */
export class Decision {
  constructor(
    readonly allowed: boolean,
    readonly remaining: number,
    readonly limit: number,
    readonly resetMs: number,
    readonly retryAfterMs: number,
    readonly reason: RejectReason | undefined,
    /** Remaining is at or below the limit's near-limit share (default 20%). */
    readonly nearLimit: boolean,
    readonly shadowed: boolean,
  ) {}
}
