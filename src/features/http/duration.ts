/**
 * Durations as @fastify/rate-limit's `timeWindow` takes them: milliseconds
 * as a number, or a string such as "1 minute", "30s", "2 hours", "500ms".
 */
import { InvalidArgumentError } from "../../core/errors.js";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Unit words and their abbreviations, mapped to the letter above. */
const ALIASES: Record<string, string> = {
  ms: "ms", msec: "ms", msecs: "ms", millisecond: "ms", milliseconds: "ms",
  s: "s", sec: "s", secs: "s", second: "s", seconds: "s",
  m: "m", min: "m", mins: "m", minute: "m", minutes: "m",
  h: "h", hr: "h", hrs: "h", hour: "h", hours: "h",
  d: "d", day: "d", days: "d",
  w: "w", week: "w", weeks: "w",
};

export function parseDuration(v: number | string, param: string): number {
  let ms: number;
  if (typeof v === "number") ms = v;
  else if (typeof v === "string") {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(v);
    const unit = m === null ? undefined : m[2] === "" ? "ms" : ALIASES[m[2]!.toLowerCase()];
    if (m === null || unit === undefined) throw new InvalidArgumentError(param, `must be milliseconds or a duration such as "1 minute", got ${JSON.stringify(v)}`);
    ms = Number(m[1]) * UNITS[unit]!;
  } else throw new InvalidArgumentError(param, `must be milliseconds or a duration such as "1 minute", got ${JSON.stringify(v)}`);
  if (!Number.isFinite(ms) || ms <= 0) throw new InvalidArgumentError(param, `must be a positive duration, got ${JSON.stringify(v)}`);
  return ms;
}
