/**
 * The label values metrics may carry. Every label is drawn from a fixed
 * vocabulary (or from listener names, which the configuration bounds): an
 * address, a user or a destination never becomes a label, so the number of
 * series stays fixed whatever the traffic.
 */

/** The guard's rules in the order it applies them (see ConnectionGuard.admit). */
export const GUARD_LIMITERS = ["deny_list", "ban", "max_connections", "max_connections_per_ip", "connection_rate", "prefix_connection_rate"] as const;
export type GuardLimiterName = (typeof GUARD_LIMITERS)[number];

/** Every `limiter` label value. */
export const LIMITERS = [...GUARD_LIMITERS, "allow_list", "auth", "destination_policy"] as const;

/** Every `reason` label value of a rejection (the engine's RejectReason, the guard's and authentication's); anything else reads as "other". */
export const REASONS = [
  "deny_list",
  "banned",
  "throttled",
  "concurrency_limit",
  "rate_limited",
  "insufficient_capacity",
  "queue_full",
  "store_unavailable",
  "limited",
  "bad_credentials",
  "malformed",
  "backoff",
  "not_permitted",
  "other",
] as const;

/**
 * The (limiter, reason) pairs of portcullis_rejections_total the gateway can
 * make, preset to 0 at start: a series that first appears at 1 is invisible
 * to increase() and rate(), so the first burst after a start would be missed.
 */
export const KNOWN_REJECTIONS: ReadonlyArray<readonly [(typeof LIMITERS)[number], (typeof REASONS)[number]]> = [
  ["deny_list", "deny_list"],
  ["ban", "banned"],
  ["max_connections", "concurrency_limit"],
  ["max_connections_per_ip", "concurrency_limit"],
  ["connection_rate", "rate_limited"],
  ["prefix_connection_rate", "rate_limited"],
  ["auth", "bad_credentials"],
  ["auth", "malformed"],
  ["auth", "backoff"],
  ["auth", "banned"],
  ["auth", "queue_full"],
  ["destination_policy", "not_permitted"],
];

export const BAN_REASONS = ["auth_failures", "manual"] as const;
export type BanReason = (typeof BAN_REASONS)[number];

export const UNBAN_REASONS = ["manual", "api", "other"] as const;

export const DIRECTIONS = ["in", "out"] as const;
export type Direction = (typeof DIRECTIONS)[number];

export const STORE_FALLBACK_MODES = ["insurance", "open", "closed"] as const;

/** Most distinct listener names labelled; later ones share "other" (a configuration bounds them anyway). */
export const MAX_LISTENER_LABELS = 64;

/** Most distinct (route, limiter) pairs of portcullis_http_rejections_total; later ones share "other". */
export const MAX_HTTP_RULE_LABELS = 256;

export function oneOfOr<T extends string>(allowed: readonly T[], v: unknown, fallback: T): T {
  return typeof v === "string" && (allowed as readonly string[]).includes(v) ? (v as T) : fallback;
}
