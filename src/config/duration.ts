/**
 * Duration strings in configuration. Operators write whichever form their
 * other tools use: `30s` / `10m` / `1h` / `250ms` / `1h30m`, clock form
 * `00:01:00` (hh:mm:ss), or ISO-8601 `PT1M`. Bare numbers are refused,
 * because "30" could mean seconds or milliseconds.
 */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

const COMPOUND = /^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
const CLOCK = /^(\d{1,3}):([0-5]\d):([0-5]\d(?:\.\d+)?)$/;
const ISO = /^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/i;

/** Milliseconds of a duration string, or undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const s = text.trim();
  if (s.length === 0 || s.length > 64) return undefined;
  if (COMPOUND.test(s)) {
    let ms = 0;
    for (const m of s.matchAll(PART)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
    return ms;
  }
  const c = CLOCK.exec(s);
  if (c) return (Number(c[1]) * 3600 + Number(c[2]) * 60 + Number(c[3])) * 1000;
  const iso = ISO.exec(s);
  // "P" and "PT" alone match the pattern with every part empty; they are not durations.
  if (iso && (iso[1] ?? iso[2] ?? iso[3] ?? iso[4]) !== undefined && !/T$/i.test(s)) {
    const [, d, h, m, sec] = iso;
    return (Number(d ?? 0) * 86_400 + Number(h ?? 0) * 3600 + Number(m ?? 0) * 60 + Number(sec ?? 0)) * 1000;
  }
  return undefined;
}

/** A duration for printing back in the effective configuration. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    if (rest >= size) {
      const n = Math.floor(rest / size);
      parts.push(`${n}${unit}`);
      rest -= n * size;
    }
  }
  if (rest > 0) parts.push(`${rest}ms`);
  return parts.join("");
}
