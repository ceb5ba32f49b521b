/**
 * Destination host patterns. A pattern is one of:
 *   "api.example.com"   exactly that host
 *   "*.example.com"     any host below example.com, at any depth, but not example.com itself
 *   "*"                 any host, including IP literals
 *   "10.1.2.3", "fd00::1"  exactly that IP literal (as the client wrote it in CONNECT)
 * Names compare case-insensitively and without a trailing dot. Patterns are
 * stored (and signed) in canonical form, so a pattern that is not canonical is
 * malformed rather than silently reinterpreted.
 */
import { isIP } from "node:net";
import { normalizeIp } from "../../net/ip-key.js";

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

function isHostname(h: string): boolean {
  if (h.length === 0 || h.length > 253) return false;
  return h.split(".").every((l) => LABEL.test(l));
}

/** The canonical form of a CONNECT host (lower case, no trailing dot, IP literals normalised), or undefined if it is not a host. */
export function normalizeHost(host: string): string | undefined {
  if (typeof host !== "string" || host.length === 0 || host.length > 255) return undefined;
  let h = host;
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (isIP(h) !== 0) return normalizeIp(h);
  h = h.toLowerCase();
  if (h.endsWith(".")) h = h.slice(0, -1);
  return isHostname(h) ? h : undefined;
}

/** The canonical form of a pattern, or undefined when it is not a valid pattern. */
export function canonicalHostPattern(pattern: string): string | undefined {
  if (pattern === "*") return pattern;
  if (pattern.startsWith("*.")) {
    const rest = normalizeHost(pattern.slice(2));
    return rest !== undefined && isIP(rest) === 0 ? `*.${rest}` : undefined;
  }
  return normalizeHost(pattern);
}

export function isCanonicalHostPattern(pattern: string): boolean {
  return canonicalHostPattern(pattern) === pattern;
}

/** Whether canonical host `host` (see normalizeHost) matches canonical `pattern`. */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === "*") return true;
  if (pattern.startsWith("*.")) {
    const suffix = pattern.slice(1); // ".example.com"
    return host.length > suffix.length && host.endsWith(suffix) && isIP(host) === 0;
  }
  return pattern === host;
}
