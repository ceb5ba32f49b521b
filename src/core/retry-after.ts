/**
 * How long a refused client must wait before it can succeed, as the fields of
 * a refusal's log line and event: `retry_after_s`, and `long_retry_after`
 * when that wait is above a threshold (`log.long_retry_after` in the
 * gateway, default 120 s). A wait that long means a ban or a deep back-off,
 * which the auth-server guide asks operators to look at by hand; the flag
 * makes those lines easy to find, and `portcullis_long_retry_after_total`
 * easy to alert on.
 */

export interface RetryAfterFields {
  retry_after_s?: number;
  long_retry_after?: true;
}

/** The fields for a refusal whose client may retry in `ms` (none when unknown). */
export function retryAfterFields(ms: number | undefined, thresholdMs: number): RetryAfterFields {
  if (ms === undefined || !Number.isFinite(ms) || ms <= 0) return {};
  const s = Math.ceil(ms / 1000);
  return s * 1000 > thresholdMs ? { retry_after_s: s, long_retry_after: true } : { retry_after_s: s };
}
