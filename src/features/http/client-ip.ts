/**
 * The client address of a request. X-Forwarded-For and Forwarded are only
 * believed when the direct peer is a configured trusted proxy; then the
 * chain is read from the right, skipping trusted hops, and the first
 * untrusted hop is the client. Anyone can write those headers, so from an
 * untrusted peer they are ignored, and the socket address is the client.
 */
import { isIPv4, isIPv6 } from "node:net";
import type { IncomingHttpHeaders } from "node:http";
import { InvalidArgumentError } from "../../core/errors.js";
import { cidrListAt, type CidrList } from "../../net/cidr.js";
import { normalizeIp } from "../../net/ip-key.js";

/** Most hops read from a forwarding chain: a longer chain is cut, never parsed in full. */
const MAX_HOPS = 32;

export class TrustedProxies {
  private readonly list: CidrList;
  readonly size: number;

  constructor(cidrs: readonly string[] = [], param = "trustedProxies") {
    if (!Array.isArray(cidrs)) throw new InvalidArgumentError(param, "must be a list of CIDRs");
    this.list = cidrListAt(param, cidrs);
    this.size = cidrs.length;
  }

  /** Whether a normalised address is a trusted proxy. */
  trusts(ip: string): boolean {
    return this.list.contains(ip);
  }
}

export interface ClientIp {
  /** Normalised client address ("unknown" when the socket had none, e.g. already closed). */
  ip: string;
  /** The request carried forwarding headers that were ignored because the peer is not trusted. */
  ignoredForwarding: boolean;
}

/** Resolves the client address of a request from its peer address and headers. */
export function resolveClientIp(remoteAddress: string | undefined, headers: IncomingHttpHeaders, trusted: TrustedProxies): ClientIp {
  const peer = safeNormalize(remoteAddress);
  if (peer === undefined) return { ip: "unknown", ignoredForwarding: false };
  const xff = headers["x-forwarded-for"];
  const fwd = headers["forwarded"];
  if (xff === undefined && fwd === undefined) return { ip: peer, ignoredForwarding: false };
  if (!trusted.trusts(peer)) return { ip: peer, ignoredForwarding: true };
  // RFC 7239 Forwarded wins when present: it is the standard and harder to mangle.
  const hops = fwd !== undefined ? forwardedFor(String(fwd)) : String(xff).split(",");
  let client = peer;
  for (let i = hops.length - 1, n = 0; i >= 0 && n < MAX_HOPS; i--, n++) {
    const hop = parseHop(hops[i]!);
    // An unparseable hop ("unknown", an obfuscated name, garbage) ends the
    // walk at the last proxy we trust: we never guess past it.
    if (hop === undefined) return { ip: client, ignoredForwarding: false };
    client = hop;
    if (!trusted.trusts(hop)) break;
  }
  return { ip: client, ignoredForwarding: false };
}

function safeNormalize(addr: string | undefined): string | undefined {
  if (addr === undefined) return undefined;
  try {
    return normalizeIp(addr);
  } catch {
    return undefined;
  }
}

/** The for= values of a Forwarded header, in order. */
function forwardedFor(v: string): string[] {
  const out: string[] = [];
  for (const element of v.split(",")) {
    let value = "";
    for (const pair of element.split(";")) {
      const eq = pair.indexOf("=");
      if (eq > 0 && pair.slice(0, eq).trim().toLowerCase() === "for") value = pair.slice(eq + 1).trim();
    }
    out.push(value);
  }
  return out;
}

/** One hop: "1.2.3.4", "1.2.3.4:5678", "[2001:db8::1]:443", "\"[2001:db8::1]\"", "2001:db8::1". */
function parseHop(raw: string): string | undefined {
  let s = raw.trim();
  if (s.startsWith('"') && s.endsWith('"') && s.length >= 2) s = s.slice(1, -1);
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end < 0) return undefined;
    s = s.slice(1, end);
  } else if (s.indexOf(":") > 0 && s.indexOf(":") === s.lastIndexOf(":")) {
    s = s.slice(0, s.indexOf(":")); // IPv4 with a port
  }
  if (!isIPv4(s) && !isIPv6(s)) return undefined;
  return safeNormalize(s);
}
