/**
 * The wait of a guard refusal at accept, as the fields of its log line and
 * event (src/core/retry-after.ts), flagged against the configured
 * `log.long_retry_after`.
 */
import { type RetryAfterFields, retryAfterFields } from "../../core/retry-after.js";
import type { GatewayContext } from "../context.js";
import type { GuardHit } from "../guard/connection-guard.js";

/** The wait of a guard refusal at accept: a ban's remaining time, a connection rate's next token; unknown for caps and lists. */
export function admissionRetryAfter(ctx: GatewayContext, hit: GuardHit): RetryAfterFields {
  return retryAfterFields(hit.retryAfterMs, ctx.config.log.long_retry_after);
}
