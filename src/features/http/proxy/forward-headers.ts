/**
 * Header rewriting for the reverse proxy. Hop-by-hop headers (RFC 9110
 * §7.6.1) stay on their hop. X-Forwarded-For / -Proto / -Host and Forwarded
 * are passed on only when the peer is a trusted proxy; from anyone else they
 * are replaced, so the upstream never sees a client's own claims about
 * where it comes from.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { isIPv6 } from "node:net";

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
]);

const FORWARDING = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "forwarded", "x-real-ip"];

/** Header names listed in a Connection header (they are hop-by-hop too). */
function connectionListed(h: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Set<string> | undefined {
  const c = h["connection"];
  if (c === undefined) return undefined;
  const v = Array.isArray(c) ? c.join(",") : String(c);
  return new Set(v.split(",").map((x) => x.trim().toLowerCase()).filter((x) => x.length > 0));
}

/** Request headers for the upstream. `peer` is the direct peer's address, `trusted` whether it is a trusted proxy. */
export function upstreamRequestHeaders(h: IncomingHttpHeaders, peer: string, trusted: boolean, proto: "http" | "https"): Record<string, string | string[]> {
  const listed = connectionListed(h);
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || HOP_BY_HOP.has(k) || listed?.has(k)) continue;
    if (!trusted && FORWARDING.includes(k)) continue;
    out[k] = v;
  }
  const host = typeof h.host === "string" ? h.host : undefined;
  const prevXff = trusted ? h["x-forwarded-for"] : undefined;
  out["x-forwarded-for"] = prevXff ? `${Array.isArray(prevXff) ? prevXff.join(", ") : prevXff}, ${peer}` : peer;
  if (!(trusted && h["x-forwarded-proto"])) out["x-forwarded-proto"] = proto;
  if (!(trusted && h["x-forwarded-host"]) && host !== undefined) out["x-forwarded-host"] = host;
  const node = isIPv6(peer) ? `"[${peer}]"` : peer;
  const element = `for=${node};proto=${proto}${host !== undefined && /^[A-Za-z0-9.:[\]-]+$/.test(host) ? `;host="${host}"` : ""}`;
  const prevFwd = trusted ? h["forwarded"] : undefined;
  out["forwarded"] = prevFwd ? `${prevFwd}, ${element}` : element;
  return out;
}

/** Response headers for the client: the upstream's, less hop-by-hop ones. */
export function clientResponseHeaders(h: Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const listed = connectionListed(h);
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || HOP_BY_HOP.has(k) || listed?.has(k)) continue;
    out[k] = v;
  }
  return out;
}
