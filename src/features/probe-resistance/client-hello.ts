/**
 * Classifies the first bytes of a connection as a TLS ClientHello and finds
 * its server_name, without consuming anything (the caller keeps the bytes to
 * replay them). Tolerates a ClientHello split across several handshake
 * records and across TCP segments, up to a bounded size; anything that is
 * not a well-formed ClientHello is reported, never thrown.
 */

export type ClientHelloVerdict =
  | { kind: "tls-with-sni"; serverName: string; recordBytes: number }
  | { kind: "tls-no-sni"; recordBytes: number }
  | { kind: "malformed"; reason: string }
  | { kind: "not-tls" }
  | { kind: "need-more-bytes" };

/** Large enough for post-quantum key shares and padding; a ClientHello beyond this is treated as malformed. */
export const DEFAULT_MAX_HELLO_BYTES = 16_384 + 2_048;

const RECORD_HEADER = 5;
const CONTENT_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
/** RFC 8446 5.1: a TLSPlaintext fragment is at most 2^14 bytes. */
const MAX_PLAINTEXT = 16_384;
const EXT_SERVER_NAME = 0x0000;
const SNI_HOST_NAME = 0x00;
const HOSTNAME_RE = /^[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$/;

class Malformed {
  constructor(readonly reason: string) {}
}

/** A bounds-checked reader; every overrun becomes a Malformed verdict, never an exception to the caller. */
class Reader {
  constructor(
    private readonly b: Buffer,
    public pos = 0,
    private readonly end = b.length,
  ) {}
  left(): number {
    return this.end - this.pos;
  }
  u8(what: string): number {
    if (this.left() < 1) throw new Malformed(`truncated ${what}`);
    return this.b[this.pos++]!;
  }
  u16(what: string): number {
    if (this.left() < 2) throw new Malformed(`truncated ${what}`);
    const v = this.b.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  take(n: number, what: string): Reader {
    if (this.left() < n) throw new Malformed(`truncated ${what}`);
    const r = new Reader(this.b, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }
  bytes(n: number, what: string): Buffer {
    if (this.left() < n) throw new Malformed(`truncated ${what}`);
    const s = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
}

/**
 * Classifies `buf` (all bytes read so far). `need-more-bytes` means the
 * answer depends on bytes not yet received; it is never returned once `buf`
 * holds `maxBytes` or more, so a caller that keeps reading always ends.
 */
export function parseClientHello(buf: Buffer, maxBytes = DEFAULT_MAX_HELLO_BYTES): ClientHelloVerdict {
  if (buf.length === 0) return { kind: "need-more-bytes" };
  if (buf[0] !== CONTENT_HANDSHAKE) return { kind: "not-tls" };
  if (buf.length >= 2 && buf[1] !== 0x03) return { kind: "not-tls" };
  // The record-layer version in the first ClientHello record is 3.0 .. 3.4 in practice.
  if (buf.length >= 3 && buf[2]! > 0x04) return { kind: "not-tls" };

  // Reassemble the handshake stream from consecutive handshake records.
  const fragments: Buffer[] = [];
  let handshakeLen = 0;
  let offset = 0;
  let helloTotal = -1;
  for (;;) {
    if (helloTotal >= 0 && handshakeLen >= helloTotal) break;
    if (buf.length - offset < RECORD_HEADER) return needMore(buf, maxBytes);
    if (buf[offset] !== CONTENT_HANDSHAKE) return { kind: "malformed", reason: "non-handshake record inside ClientHello" };
    if (buf[offset + 1] !== 0x03) return { kind: "malformed", reason: "bad record version" };
    const len = buf.readUInt16BE(offset + 3);
    if (len === 0) return { kind: "malformed", reason: "empty handshake record" };
    if (len > MAX_PLAINTEXT) return { kind: "malformed", reason: "record longer than 2^14" };
    if (offset + RECORD_HEADER + len > maxBytes) return { kind: "malformed", reason: "ClientHello larger than the bound" };
    if (buf.length - offset - RECORD_HEADER < len) return needMore(buf, maxBytes);
    fragments.push(buf.subarray(offset + RECORD_HEADER, offset + RECORD_HEADER + len));
    handshakeLen += len;
    offset += RECORD_HEADER + len;
    if (helloTotal < 0 && handshakeLen >= 4) {
      const head = Buffer.concat(fragments, 4);
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) return { kind: "malformed", reason: "first handshake message is not ClientHello" };
      const bodyLen = (head[1]! << 16) | (head[2]! << 8) | head[3]!;
      helloTotal = 4 + bodyLen;
      if (helloTotal > maxBytes) return { kind: "malformed", reason: "ClientHello larger than the bound" };
    }
  }
  const handshake = Buffer.concat(fragments, handshakeLen);
  try {
    const serverName = parseHelloBody(new Reader(handshake, 4, helloTotal));
    return serverName === undefined
      ? { kind: "tls-no-sni", recordBytes: offset }
      : { kind: "tls-with-sni", serverName, recordBytes: offset };
  } catch (e) {
    if (e instanceof Malformed) return { kind: "malformed", reason: e.reason };
    throw e;
  }
}

function needMore(buf: Buffer, maxBytes: number): ClientHelloVerdict {
  return buf.length >= maxBytes ? { kind: "malformed", reason: "ClientHello larger than the bound" } : { kind: "need-more-bytes" };
}

/** Returns the host_name from server_name, or undefined when the extension is absent. */
function parseHelloBody(r: Reader): string | undefined {
  const major = r.u8("client_version");
  r.u8("client_version");
  if (major !== 0x03) throw new Malformed("bad client_version");
  r.bytes(32, "random");
  const sid = r.u8("session_id length");
  if (sid > 32) throw new Malformed("session_id longer than 32");
  r.bytes(sid, "session_id");
  const suites = r.u16("cipher_suites length");
  if (suites < 2 || suites % 2 !== 0) throw new Malformed("bad cipher_suites length");
  r.bytes(suites, "cipher_suites");
  const comp = r.u8("compression_methods length");
  if (comp < 1) throw new Malformed("no compression method");
  r.bytes(comp, "compression_methods");
  if (r.left() === 0) return undefined; // extensions are optional (pre-TLS 1.2 hellos)
  const extLen = r.u16("extensions length");
  if (extLen !== r.left()) throw new Malformed("extensions length does not match the ClientHello");
  const ext = r.take(extLen, "extensions");
  const seen = new Set<number>();
  let serverName: string | undefined;
  while (ext.left() > 0) {
    const type = ext.u16("extension type");
    const len = ext.u16("extension length");
    const body = ext.take(len, "extension body");
    if (seen.has(type)) throw new Malformed("duplicate extension");
    seen.add(type);
    if (type === EXT_SERVER_NAME) serverName = parseServerName(body);
  }
  return serverName;
}

function parseServerName(r: Reader): string | undefined {
  // RFC 6066 allows an empty extension body in the ServerHello only; from a client it is malformed.
  const listLen = r.u16("server_name_list length");
  if (listLen !== r.left() || listLen === 0) throw new Malformed("bad server_name_list length");
  let host: string | undefined;
  while (r.left() > 0) {
    const type = r.u8("name_type");
    const len = r.u16("name length");
    const name = r.bytes(len, "host_name");
    if (type !== SNI_HOST_NAME) continue;
    if (host !== undefined) throw new Malformed("more than one host_name");
    host = validHostName(name);
  }
  return host;
}

function validHostName(raw: Buffer): string {
  if (raw.length === 0 || raw.length > 253) throw new Malformed("bad host_name length");
  for (const c of raw) if (c < 0x21 || c > 0x7e) throw new Malformed("non-ASCII host_name");
  // A trailing dot names the same host; RFC 6066 forbids it, browsers strip it.
  const name = raw.toString("ascii").toLowerCase().replace(/\.$/, "");
  if (!HOSTNAME_RE.test(name)) throw new Malformed("host_name is not a DNS name");
  return name;
}
