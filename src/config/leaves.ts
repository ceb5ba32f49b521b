/**
 * Leaf value schemas with messages an operator can act on: each says what
 * was expected and shows what was given, e.g.
 * `expected a positive integer, got "x"`.
 */
import { isIP } from "node:net";
import { z } from "zod";
import { parseDuration } from "./duration.js";
import { parseSize } from "./size.js";
import { shown } from "../core/shown.js";

export { shown };

function leaf<T>(expected: string, parse: (v: unknown) => T | undefined) {
  return z.unknown().transform((v, ctx): T => {
    const out = v === undefined ? undefined : parse(v);
    if (out === undefined) {
      ctx.addIssue({ code: "custom", message: `expected ${expected}, got ${shown(v)}` });
      return z.NEVER;
    }
    return out;
  });
}

export const positiveInt = leaf("a positive integer", (v) => (typeof v === "number" && Number.isSafeInteger(v) && v > 0 ? v : undefined));

export const intInRange = (lo: number, hi: number) =>
  leaf(`an integer from ${lo} to ${hi}`, (v) => (typeof v === "number" && Number.isInteger(v) && v >= lo && v <= hi ? v : undefined));

export const bool = leaf("true or false", (v) => (typeof v === "boolean" ? v : undefined));

export const nonEmptyString = leaf("a non-empty string", (v) => (typeof v === "string" && v.length > 0 ? v : undefined));

export const oneOf = <const T extends string>(values: readonly T[]) =>
  leaf(`one of ${values.map((x) => `"${x}"`).join(", ")}`, (v) => (values.includes(v as T) ? (v as T) : undefined));

/** Milliseconds; must be > 0. */
export const duration = leaf('a duration such as "30s", "10m", "1h", "00:01:00" or "PT1M"', (v) => {
  const ms = typeof v === "string" ? parseDuration(v) : undefined;
  return ms !== undefined && ms > 0 ? ms : undefined;
});

/** Milliseconds; 0 allowed (as 0 or "0s"), meaning "none". */
export const durationOrZero = leaf('a duration such as "30s", "10m" or 0', (v) => {
  const ms = v === 0 ? 0 : typeof v === "string" ? parseDuration(v) : undefined;
  return ms !== undefined && ms >= 0 ? ms : undefined;
});

export const size = leaf('a size such as "10MiB", "512KiB" or 1_000_000', (v) => {
  const n = parseSize(v);
  return n !== undefined && n > 0 ? n : undefined;
});

/** `host:port` to listen on or connect to; IPv6 hosts in brackets. */
export interface HostPort {
  host: string;
  port: number;
}

export function parseHostPort(v: unknown): HostPort | undefined {
  if (typeof v !== "string") return undefined;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(v);
  if (!m) return undefined;
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  if (m[1] !== undefined && isIP(host) !== 6) return undefined;
  return { host, port };
}

export const hostPort = leaf('"host:port" (IPv6 as "[::1]:8080")', parseHostPort);

export const dottedOid = leaf('a dotted OID such as "1.3.6.1.4.1.55555.1"', (v) =>
  typeof v === "string" && /^[0-2](?:\.(?:0|[1-9]\d*)){1,40}$/.test(v) ? v : undefined,
);
