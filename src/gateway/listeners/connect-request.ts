/**
 * The CONNECT request head, read and parsed strictly. Only what a forward
 * proxy needs is kept: the authority (host and port) and the
 * Proxy-Authorization header. Anything else malformed is refused, and the
 * caller closes without a word.
 */
import { isIP } from "node:net";

export type ConnectHead =
  | { ok: true; host: string; port: number; authorization: string | undefined }
  | { ok: false; reason: string };

const HEADER_END = Buffer.from("\r\n\r\n");
/** Most header lines accepted in one head. */
const MAX_HEADERS = 64;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;

/** Index just past the blank line ending the head, or -1 while it is incomplete. */
export function headEnd(buf: Buffer): number {
  const i = buf.indexOf(HEADER_END);
  return i < 0 ? -1 : i + HEADER_END.length;
}

export function parseAuthority(authority: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]/@\s]+)):(\d{1,5})$/.exec(authority);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  if (m[1] !== undefined) return isIP(m[1]) === 6 ? { host: m[1], port } : undefined;
  const host = m[2]!;
  if (isIP(host) === 4 || HOSTNAME.test(host)) return { host: host.toLowerCase(), port };
  return undefined;
}

/** Parses a complete head (up to and including the blank line). */
export function parseConnectHead(head: Buffer): ConnectHead {
  // latin1 maps bytes 1:1, so a non-ASCII byte cannot hide a CR or LF.
  const text = head.toString("latin1");
  if (/[^\t\r\n\x20-\x7e]/.test(text)) return { ok: false, reason: "non_ascii" };
  const lines = text.split("\r\n");
  // The head ends with "\r\n\r\n": the last two entries are empty.
  lines.length -= 2;
  const requestLine = lines[0] ?? "";
  const parts = requestLine.split(" ");
  if (parts.length !== 3 || !/^HTTP\/1\.[01]$/.test(parts[2]!)) return { ok: false, reason: "bad_request_line" };
  if (parts[0] !== "CONNECT") return { ok: false, reason: "not_connect" };
  const target = parseAuthority(parts[1]!);
  if (!target) return { ok: false, reason: "bad_authority" };
  if (lines.length - 1 > MAX_HEADERS) return { ok: false, reason: "too_many_headers" };
  let authorization: string | undefined;
  let hasHost = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    if (colon <= 0) return { ok: false, reason: "bad_header" };
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return { ok: false, reason: "bad_header" };
    const lower = name.toLowerCase();
    if (lower === "proxy-authorization") {
      if (authorization !== undefined) return { ok: false, reason: "duplicate_authorization" };
      authorization = line.slice(colon + 1).trim();
    } else if (lower === "host") {
      hasHost = true;
    }
  }
  // HTTP/1.1 requires Host (RFC 9112 3.2); its absence marks a hand-made or broken client.
  if (parts[2] === "HTTP/1.1" && !hasHost) return { ok: false, reason: "missing_host" };
  return { ok: true, host: target.host, port: target.port, authorization };
}
