/**
 * Times as the authority types them on the command line: an ISO 8601 date
 * and time with an explicit zone ("2026-12-01T00:00:00Z",
 * "2026-12-01T09:00+02:00"), a date alone (midnight UTC), "now", or an offset
 * from now ("90s", "15m", "12h", "30d", optionally "+30d").
 */
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;
const ISO_DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/;

/** Wall-clock ms for `s`, or undefined when it is not one of the accepted forms. */
export function parseTimeArg(s: string, nowMs: number): number | undefined {
  const t = s.trim();
  if (t === "now") return Math.floor(nowMs);
  const rel = /^\+?(\d{1,9})([smhd])$/.exec(t);
  if (rel) return Math.floor(nowMs) + Number(rel[1]) * UNIT_MS[rel[2]!]!;
  if (!ISO_DATE.test(t) && !ISO_DATETIME.test(t)) return undefined;
  const ms = Date.parse(ISO_DATE.test(t) ? `${t}T00:00:00Z` : t);
  return Number.isFinite(ms) ? ms : undefined;
}
