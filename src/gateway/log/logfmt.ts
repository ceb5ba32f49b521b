/**
 * logfmt: one event per line as `key=value` pairs. A value is written bare
 * when it is made only of visible ASCII without `"`, `=` or `\`; otherwise it
 * is double-quoted with `\\`, `\"`, `\n`, `\r`, `\t` and `\uXXXX` escapes for
 * every other control or line-breaking character. So whatever a client puts
 * in a field (a user name with a newline, or with `result=reject` inside it)
 * stays inside that one quoted value on that one line.
 */

const BARE = /^[\x21\x23-\x3c\x3e-\x5b\x5d-\x7e]+$/;
const KEY_CHARS = /[^A-Za-z0-9_.-]/g;
// Control characters, DEL, C1 controls and the Unicode line/paragraph separators.
const NEEDS_ESCAPE = /[\p{Cc}\u2028\u2029"\\]/gu;

function escapeChar(c: string): string {
  switch (c) {
    case '"':
      return '\\"';
    case "\\":
      return "\\\\";
    case "\n":
      return "\\n";
    case "\r":
      return "\\r";
    case "\t":
      return "\\t";
    default:
      return `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
  }
}

function text(v: unknown): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  if (v === null) return "null";
  return JSON.stringify(v) ?? "";
}

export function logfmtValue(v: unknown): string {
  const s = text(v);
  if (BARE.test(s)) return s;
  return `"${s.replace(NEEDS_ESCAPE, escapeChar)}"`;
}

/** A key as logfmt allows it; callers' keys are ours, but a stray character must not break the line. */
export function logfmtKey(k: string): string {
  const cleaned = k.replace(KEY_CHARS, "_");
  return cleaned.length > 0 ? cleaned : "_";
}

/** One record as one logfmt line (without the newline), fields in the given order; undefined fields are left out. */
export function formatLogfmt(record: Record<string, unknown>, first: readonly string[] = []): string {
  const parts: string[] = [];
  const seen = new Set<string>();
  for (const k of [...first, ...Object.keys(record)]) {
    if (seen.has(k)) continue;
    seen.add(k);
    const v = record[k];
    if (v === undefined) continue;
    parts.push(`${logfmtKey(k)}=${logfmtValue(v)}`);
  }
  return parts.join(" ");
}

/**
 * A pino destination that turns each JSON line pino writes into a logfmt
 * line, synchronously, in the writing thread (no worker transport: a crash
 * loses nothing that was logged before it).
 */
export class LogfmtDestination {
  constructor(private readonly target: NodeJS.WritableStream) {}

  write(chunk: string): boolean {
    let out = "";
    for (const line of chunk.split("\n")) {
      if (line.length === 0) continue;
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        // Pino always writes JSON; keep anything else as one quoted value rather than lose it.
        record = { msg: line };
      }
      out += `${formatLogfmt(record, ["ts", "level", "event"])}\n`;
    }
    return out.length === 0 ? true : this.target.write(out);
  }
}
