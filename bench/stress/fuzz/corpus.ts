/**
 * Well-formed inputs the fuzzer starts from, per protocol: CONNECT heads
 * (with and without valid credentials), real TLS ClientHellos (made by
 * node:tls, with the served name, another name and none), HTTP requests for
 * the http listener, and UDP datagrams. Length fields are located so that
 * "length-lie" rewrites the ones a parser trusts.
 */
import { once } from "node:events";
import net from "node:net";
import tls from "node:tls";
import type { LengthField, Seed } from "./mutate.js";

export type Protocol = "connect" | "tls" | "http" | "udp";
export const PROTOCOLS: readonly Protocol[] = ["connect", "tls", "http", "udp"];

export function connectSeeds(user: string, password: string, echoPort: number): Seed[] {
  const good = Buffer.from(`${user}:${password}`).toString("base64");
  const bad = Buffer.from(`${user}:wrong`).toString("base64");
  const head = (target: string, auth?: string, extra = ""): Seed => ({
    name: `CONNECT ${target}${auth ? "" : " (no auth)"}`,
    text: true,
    bytes: Buffer.from(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth ? `Proxy-Authorization: Basic ${auth}\r\n` : ""}${extra}\r\n`),
  });
  return [
    head(`127.0.0.1:${echoPort}`, good),
    { ...head(`127.0.0.1:${echoPort}`, good), name: "CONNECT with a payload", bytes: Buffer.concat([head(`127.0.0.1:${echoPort}`, good).bytes, Buffer.from("payload after the head")]) },
    head(`127.0.0.1:${echoPort}`, bad),
    head(`127.0.0.1:${echoPort}`),
    head(`[::1]:${echoPort}`, good, "Proxy-Connection: keep-alive\r\nUser-Agent: curl/8.5.0\r\n"),
    head(`localhost:${echoPort}`, good, "Content-Length: 5\r\n"),
    { name: "GET through the proxy", text: true, bytes: Buffer.from(`GET http://127.0.0.1:${echoPort}/ HTTP/1.1\r\nHost: 127.0.0.1\r\nProxy-Authorization: Basic ${good}\r\n\r\n`) },
  ];
}

export function httpSeeds(): Seed[] {
  const req = (s: string): Seed => ({ name: s.split("\r\n")[0]!, text: true, bytes: Buffer.from(s) });
  return [
    req("GET / HTTP/1.1\r\nHost: api\r\n\r\n"),
    req("GET /a/b?c=d&e=%20 HTTP/1.1\r\nHost: api\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\nGET /second HTTP/1.1\r\nHost: api\r\n\r\n"),
    req("POST /login HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"user\":\"a\",\"password\":\"b\"}"),
    req("POST /upload HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    req("GET / HTTP/1.1\r\nHost: api\r\nX-Forwarded-For: 203.0.113.7, 10.0.0.1\r\nForwarded: for=198.51.100.1\r\n\r\n"),
    req("OPTIONS * HTTP/1.1\r\nHost: api\r\n\r\n"),
    req("GET / HTTP/1.0\r\n\r\n"),
  ];
}

export function udpSeeds(): Seed[] {
  // A DNS query for example.org (A), whose counts are the length fields a resolver trusts.
  const dns = Buffer.from("123401000001000000000000076578616d706c65036f72670000010001", "hex");
  return [
    { name: "dns query", bytes: dns, lengthFields: [4, 6, 8, 10].map((offset) => ({ offset, width: 2 })) },
    { name: "small datagram", bytes: Buffer.from("ping") },
    { name: "empty datagram", bytes: Buffer.alloc(0) },
    { name: "1200-byte datagram", bytes: Buffer.alloc(1200, 0x42) },
  ];
}

/** The length fields of a ClientHello record: record, handshake, session id, cipher suites, compression, extensions. */
export function clientHelloLengthFields(b: Buffer): LengthField[] {
  const fields: LengthField[] = [{ offset: 3, width: 2 }, { offset: 6, width: 3 }];
  let at = 43;
  if (b.length <= at) return fields;
  fields.push({ offset: at, width: 1 });
  at += 1 + b[at]!;
  if (b.length < at + 2) return fields;
  fields.push({ offset: at, width: 2 });
  at += 2 + b.readUInt16BE(at);
  if (b.length <= at) return fields;
  fields.push({ offset: at, width: 1 });
  at += 1 + b[at]!;
  if (b.length < at + 2) return fields;
  fields.push({ offset: at, width: 2 });
  // The first extensions' own lengths.
  at += 2;
  for (let k = 0; k < 4 && at + 4 <= b.length; k++) {
    fields.push({ offset: at + 2, width: 2 });
    at += 4 + b.readUInt16BE(at + 2);
  }
  return fields;
}

/** A real ClientHello from node:tls: the first record it sends to a server that never answers. */
export async function captureClientHello(o: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  let resolveHello!: (b: Buffer) => void;
  const hello = new Promise<Buffer>((r) => (resolveHello = r));
  server.on("connection", (s) => {
    let got = Buffer.alloc(0);
    s.on("error", () => {});
    s.on("data", (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 5 && got.length >= 5 + got.readUInt16BE(3)) {
        resolveHello(got.subarray(0, 5 + got.readUInt16BE(3)));
        s.destroy();
      }
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const c = tls.connect({ ...o, port: (server.address() as net.AddressInfo).port, host: "127.0.0.1", rejectUnauthorized: false });
  c.on("error", () => {});
  try {
    return await Promise.race([hello, new Promise<never>((_, rej) => setTimeout(() => rej(new Error("no ClientHello within 5 s")), 5000))]);
  } finally {
    c.destroy();
    server.close();
  }
}

export async function tlsSeeds(servedName: string): Promise<Seed[]> {
  const variants: [string, tls.ConnectionOptions][] = [
    [`ClientHello SNI ${servedName}`, { servername: servedName }],
    ["ClientHello SNI unknown.test", { servername: "unknown.test" }],
    ["ClientHello without SNI", {}],
    ["ClientHello TLS 1.2 with ALPN", { servername: servedName, maxVersion: "TLSv1.2", ALPNProtocols: ["h2", "http/1.1"] }],
  ];
  const seeds: Seed[] = [];
  for (const [name, o] of variants) {
    const bytes = await captureClientHello(o);
    seeds.push({ name, bytes, lengthFields: clientHelloLengthFields(bytes) });
  }
  return seeds;
}
