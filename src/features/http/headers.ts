/**
 * Rate-limit response headers.
 *
 * "ietf" is the current IETF draft (draft-ietf-httpapi-ratelimit-headers):
 * two Structured Field lists with one item per applicable limit,
 *   RateLimit-Policy: "token";q=30;w=60
 *   RateLimit: "token";r=12;t=41
 * where q is the quota, w the window in seconds, r what remains and t the
 * seconds until the quota resets. "legacy" is the older
 * RateLimit-Limit / -Remaining / -Reset triple, "x" the X-RateLimit-*
 * triple with Reset as epoch seconds (as GitHub and express-rate-limit send).
 * The triples describe one limit: the one that rejected, else the one with
 * the least remaining.
 *
 * Names are written in lower case (as HTTP/2 requires, and HTTP/1.1 field
 * names are case-insensitive): Node's setHeader lower-cases every name, and
 * a name that already is costs half as much per response.
 */
import { InvalidArgumentError } from "../../core/errors.js";
import type { HeaderFormat } from "./types.js";

/** A limit's state as the headers show it. */
export interface LimitView {
  /** The quoted policy name, `"token"`. */
  readonly quotedName: string;
  readonly quota: number;
  readonly remaining: number;
  /** Whole seconds until the quota resets (for the rejecting limit: until a request fits again). */
  readonly resetSec: number;
}

export type HeaderSink = Record<string, string>;

export const FORMATS: readonly HeaderFormat[] = ["ietf", "legacy", "x"];

export function headerFormats(f: HeaderFormat | HeaderFormat[] | undefined): { ietf: boolean; legacy: boolean; x: boolean } {
  const list: string[] = f === undefined ? ["ietf"] : Array.isArray(f) ? f : [f];
  for (const v of list) {
    if (!(FORMATS as readonly string[]).includes(v)) throw new InvalidArgumentError("headers.format", `must be one of ${FORMATS.join(", ")}; got ${JSON.stringify(v)}`);
  }
  return { ietf: list.includes("ietf"), legacy: list.includes("legacy"), x: list.includes("x") };
}

/** A policy name as an sf-string; names are restricted to printable ASCII so that this is always valid. */
export function quoteName(name: string, param: string): string {
  if (typeof name !== "string" || !/^[\x20-\x7e]{1,128}$/.test(name)) {
    throw new InvalidArgumentError(param, `must be 1 to 128 printable ASCII characters, got ${JSON.stringify(name)}`);
  }
  return `"${name.replace(/[\\"]/g, "\\$&")}"`;
}

/** One RateLimit-Policy item. */
export function policyItem(quotedName: string, quota: number, windowSec: number): string {
  return `${quotedName};q=${quota};w=${windowSec}`;
}

/** Whole seconds, rounded up, for a duration in ms (0 stays 0). */
export function ceilSeconds(ms: number): number {
  return ms > 0 ? Math.ceil(ms / 1000) : 0;
}

/** Retry-After in whole seconds: rounded up, at least 1, and never before the violated limits' t. */
export function retryAfterSeconds(retryAfterMs: number, views: readonly LimitView[]): number {
  let s = Math.max(1, ceilSeconds(retryAfterMs));
  for (const v of views) if (v.remaining <= 0 && v.resetSec > s) s = v.resetSec;
  return s;
}

/** Writes the rate-limit headers of `views` (in route order) into `out`. */
export function writeRateLimitHeaders(
  out: HeaderSink,
  views: readonly LimitView[],
  policyHeader: string,
  fmt: { ietf: boolean; legacy: boolean; x: boolean },
  focus: number,
  wallNowMs: number,
): void {
  if (views.length === 0) return;
  if (fmt.ietf) {
    out["ratelimit-policy"] = policyHeader;
    let v = "";
    for (let i = 0; i < views.length; i++) {
      const l = views[i]!;
      v += `${i === 0 ? "" : ", "}${l.quotedName};r=${l.remaining};t=${l.resetSec}`;
    }
    out["ratelimit"] = v;
  }
  if (fmt.legacy || fmt.x) {
    const l = views[focus >= 0 ? focus : leastRemaining(views)]!;
    if (fmt.legacy) {
      out["ratelimit-limit"] = String(l.quota);
      out["ratelimit-remaining"] = String(l.remaining);
      out["ratelimit-reset"] = String(l.resetSec);
    }
    if (fmt.x) {
      out["x-ratelimit-limit"] = String(l.quota);
      out["x-ratelimit-remaining"] = String(l.remaining);
      out["x-ratelimit-reset"] = String(Math.ceil(wallNowMs / 1000) + l.resetSec);
    }
  }
}

function leastRemaining(views: readonly LimitView[]): number {
  let best = 0;
  for (let i = 1; i < views.length; i++) if (views[i]!.remaining < views[best]!.remaining) best = i;
  return best;
}
