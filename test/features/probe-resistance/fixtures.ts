/**
 * Real parts for the probe-resistance tests: self-signed certificates made
 * with the openssl CLI, deterministic mask hosts (node:http and node:https),
 * a raw TCP prober that records every byte it receives, and listeners that
 * put the probe modules in front of real sockets.
 */
import { execFile, spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { promisify } from "node:util";
import { connectHeadVerdict, maskUnauthenticated } from "../../../src/features/probe-resistance/connect-masking.js";
import type { MaskRelayLimits, MaskRelaySummary, MaskTarget } from "../../../src/features/probe-resistance/mask-relay.js";
import { type MaskedTlsOptions, type MaskedTlsOutcome, handleMaskedTlsConnection } from "../../../src/features/probe-resistance/masked-tls-listener.js";
import { startRejectionDelay } from "../../../src/features/probe-resistance/rejection-delay.js";
import { waitUntil, sleep } from "../../helpers/wait.js";

const run = promisify(execFile);

export interface SelfSigned {
  cert: string;
  key: string;
}

/** A self-signed P-256 certificate for `name`, made by openssl in a temporary directory. */
export async function selfSigned(name: string): Promise<SelfSigned> {
  const dir = await mkdtemp(join(tmpdir(), "portcullis-probe-"));
  const keyPath = join(dir, "key.pem");
  const certPath = join(dir, "cert.pem");
  await run(
    "openssl",
    [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", keyPath, "-out", certPath,
      "-days", "2", "-subj", `/CN=${name}`, "-addext", `subjectAltName=DNS:${name}`,
    ],
    { timeout: 20_000 },
  );
  return { cert: await readFile(certPath, "utf8"), key: await readFile(keyPath, "utf8") };
}

/** SHA-256 fingerprint of a PEM certificate, in the format of getPeerCertificate().fingerprint256. */
export function fingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

export const FIXED_DATE = "Mon, 01 Jan 2024 00:00:00 GMT";

/**
 * A mask site's request handler with a deterministic answer: the response
 * echoes the request line and raw headers, so the answer proves which bytes
 * reached the mask host, and carries a fixed Date.
 */
function maskHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const body = JSON.stringify({ site: "mask", method: req.method, url: req.url, headers: req.rawHeaders, body: Buffer.concat(chunks).toString("base64") });
    res.sendDate = false;
    res.writeHead(200, { Date: FIXED_DATE, Server: "mask-site", "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
    res.end(body);
  });
}

/** What the mask site answers to CONNECT: a fixed 405, as an ordinary web server does. */
function maskConnect(_req: http.IncomingMessage, socket: import("node:stream").Duplex): void {
  socket.end(`HTTP/1.1 405 Method Not Allowed\r\nDate: ${FIXED_DATE}\r\nServer: mask-site\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
}

export interface Running {
  port: number;
  close(): Promise<void>;
}

function listen(server: net.Server, host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve((server.address() as net.AddressInfo).port));
  });
}

function closer(server: net.Server, sockets: Set<net.Socket>): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
}

function track(server: net.Server): Set<net.Socket> {
  const sockets = new Set<net.Socket>();
  server.on("connection", (s: net.Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  return sockets;
}

function tuneMaskServer(server: http.Server): void {
  // Short keep-alive so an exchange ends with the server's close, the same way on every path.
  server.keepAliveTimeout = 300;
  server.on("connect", maskConnect);
}

export async function startHttpMask(): Promise<Running> {
  const server = http.createServer(maskHandler);
  tuneMaskServer(server);
  const sockets = track(server);
  const port = await listen(server);
  return { port, close: closer(server, sockets) };
}

export async function startHttpsMask(cert: SelfSigned): Promise<Running> {
  const server = https.createServer({ cert: cert.cert, key: cert.key }, maskHandler);
  tuneMaskServer(server);
  const sockets = track(server);
  const port = await listen(server);
  return { port, close: closer(server, sockets) };
}

/** A port on 127.0.0.1 with nothing listening (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  const port = await listen(server);
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

export interface Exchange {
  bytes: Buffer;
  /** How the connection ended: the peer's FIN/close, a reset, or the test's own time bound. */
  end: "closed" | "reset" | "timeout";
  elapsedMs: number;
}

export interface ExchangeOptions {
  /** Half-close after sending (default true). */
  halfClose?: boolean;
  timeoutMs?: number;
  localAddress?: string;
}

/** Connects, sends `input`, and records every byte received until the peer closes (bounded by timeoutMs). */
export function exchange(port: number, input: Buffer, o: ExchangeOptions = {}): Promise<Exchange> {
  return new Promise((resolve) => {
    const started = performance.now();
    const chunks: Buffer[] = [];
    let settled = false;
    const sock = net.connect({ port, host: "127.0.0.1", localAddress: o.localAddress, allowHalfOpen: true });
    const done = (end: Exchange["end"]) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ bytes: Buffer.concat(chunks), end, elapsedMs: performance.now() - started });
    };
    const timer = setTimeout(() => done("timeout"), o.timeoutMs ?? 5_000);
    sock.on("connect", () => {
      sock.write(input);
      if (o.halfClose ?? true) sock.end();
    });
    sock.on("data", (c: Buffer) => chunks.push(c));
    sock.on("error", () => done("reset"));
    sock.on("end", () => done("closed"));
    sock.on("close", () => done("closed"));
  });
}

export interface TlsExchange {
  fingerprint: string | undefined;
  bytes: Buffer;
  error?: string;
}

/** A real TLS client: handshake (trusting nothing, recording the certificate), send `request`, read until close. */
export function tlsExchange(port: number, servername: string | undefined, request: Buffer, timeoutMs = 5_000, localAddress?: string): Promise<TlsExchange> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let fp: string | undefined;
    let settled = false;
    // tls.connect hands localAddress on to net.connect (its type does not list it).
    const options: tls.ConnectionOptions & { localAddress?: string } = { port, host: "127.0.0.1", localAddress, servername, rejectUnauthorized: false, minVersion: "TLSv1.2" };
    const sock = tls.connect(options);
    const done = (error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(error === undefined ? { fingerprint: fp, bytes: Buffer.concat(chunks) } : { fingerprint: fp, bytes: Buffer.concat(chunks), error });
    };
    const timer = setTimeout(() => done("timeout"), timeoutMs);
    sock.on("secureConnect", () => {
      fp = sock.getPeerCertificate().fingerprint256;
      sock.write(request);
    });
    sock.on("data", (c: Buffer) => chunks.push(c));
    sock.on("end", () => done());
    sock.on("close", () => done());
    sock.on("error", (e: Error) => done(e.message));
  });
}

export interface ConnectFrontOptions {
  mask: MaskTarget;
  limits?: MaskRelayLimits;
  /** The one valid Proxy-Authorization value. */
  credentials: string;
  maxHeadBytes?: number;
  headTimeoutMs?: number;
  delayFloorMs?: number;
  delayCeilingMs?: number;
}

export interface ConnectFront extends Running {
  /** Summaries of masked connections, in completion order. */
  masked: MaskRelaySummary[];
  tunnels: number;
}

/**
 * A minimal CONNECT proxy front end: an authenticated CONNECT (credentials
 * sent up front) is tunnelled; anything else goes, with every byte read, to
 * maskUnauthenticated. It never writes a byte of its own to a rejected client.
 */
export async function startConnectFront(o: ConnectFrontOptions): Promise<ConnectFront> {
  const maxHead = o.maxHeadBytes ?? 8192;
  const masked: MaskRelaySummary[] = [];
  const front: ConnectFront = { port: 0, masked, tunnels: 0, close: async () => {} };
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const deadline = startRejectionDelay({ floorMs: o.delayFloorMs ?? 20, ceilingMs: o.delayCeilingMs ?? 60 });
    const chunks: Buffer[] = [];
    let total = 0;
    let decided = false;
    const decide = (mask: boolean) => {
      if (decided) return;
      decided = true;
      clearTimeout(timer);
      socket.removeAllListeners("data");
      socket.removeAllListeners("end");
      socket.pause();
      const bytes = Buffer.concat(chunks, total);
      if (mask) {
        void maskUnauthenticated(socket, bytes, { ...o.limits, mask: o.mask, deadline }).then((s) => masked.push(s));
        return;
      }
      deadline.cancel();
      tunnel(socket, bytes);
    };
    const timer = setTimeout(() => decide(true), o.headTimeoutMs ?? 2_000);
    socket.on("error", () => socket.destroy());
    socket.on("data", (c: Buffer) => {
      chunks.push(c);
      total += c.length;
      const buf = Buffer.concat(chunks, total);
      const v = connectHeadVerdict(buf, maxHead);
      if (v.kind === "need-more-bytes") return;
      if (v.kind !== "head-complete") return decide(true);
      const head = buf.subarray(0, v.headBytes).toString("latin1");
      const auth = /\r\nproxy-authorization:[ \t]*([^\r\n]*)/i.exec(head)?.[1]?.trim();
      decide(auth !== o.credentials);
    });
    socket.on("end", () => decide(true));
  });
  const tunnel = (socket: net.Socket, bytes: Buffer) => {
    front.tunnels++;
    const head = bytes.toString("latin1");
    const target = /^CONNECT ([^ :]+):(\d+) /.exec(head);
    const headEnd = bytes.indexOf("\r\n\r\n") + 4;
    if (!target) return socket.destroy();
    const up = net.connect({ host: target[1], port: Number(target[2]) }, () => {
      socket.write("HTTP/1.1 200 Connection established\r\n\r\n");
      if (bytes.length > headEnd) up.write(bytes.subarray(headEnd));
      socket.pipe(up);
      up.pipe(socket);
      socket.resume();
    });
    up.on("error", () => socket.destroy());
    socket.on("error", () => up.destroy());
  };
  const sockets = track(server);
  front.port = await listen(server);
  front.close = closer(server, sockets);
  return front;
}

export interface TlsFront extends Running {
  outcomes: MaskedTlsOutcome[];
}

/**
 * A TLS listener with probe resistance: handleMaskedTlsConnection for every
 * connection; terminated connections answer a fixed gateway response.
 */
export async function startTlsFront(o: Omit<MaskedTlsOptions, "onTerminated"> & { onTerminated?: MaskedTlsOptions["onTerminated"] }): Promise<TlsFront> {
  const outcomes: MaskedTlsOutcome[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    void handleMaskedTlsConnection(socket, {
      ...o,
      onTerminated:
        o.onTerminated ??
        ((t) => {
          t.on("error", () => t.destroy());
          t.once("data", () => t.end("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\ngateway"));
        }),
    }).then((r) => outcomes.push(r));
  });
  const sockets = track(server);
  const port = await listen(server);
  return { port, outcomes, close: closer(server, sockets) };
}

/** The exact bytes of a real Node ClientHello for `servername`. */
export async function captureClientHello(servername: string | undefined, options: tls.ConnectionOptions = {}): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as net.AddressInfo).port;
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no ClientHello")), 4_000);
      server.once("connection", (s: net.Socket) => {
        // Collect until a whole first flight is in (records can arrive in several segments).
        const chunks: Buffer[] = [];
        s.on("data", (d: Buffer) => {
          chunks.push(d);
          const all = Buffer.concat(chunks);
          if (all.length >= 5 && all.length >= 5 + all.readUInt16BE(3)) {
            clearTimeout(timer);
            s.destroy();
            resolve(all);
          }
        });
      });
      const c = tls.connect({ ...options, port, host: "127.0.0.1", servername, rejectUnauthorized: false });
      c.on("error", () => {});
    });
  } finally {
    server.close();
  }
}

/** The first flight of the openssl CLI client (a second, independent TLS implementation's ClientHello). */
export async function captureOpensslHello(servername: string | undefined): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as net.AddressInfo).port;
  try {
    const got = new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no ClientHello")), 8_000);
      server.once("connection", (s: net.Socket) => {
        const chunks: Buffer[] = [];
        s.on("data", (d: Buffer) => {
          chunks.push(d);
          const all = Buffer.concat(chunks);
          if (all.length >= 5 && all.length >= 5 + all.readUInt16BE(3)) {
            clearTimeout(timer);
            s.destroy();
            resolve(all);
          }
        });
      });
    });
    const args = ["s_client", "-connect", `127.0.0.1:${port}`, ...(servername === undefined ? ["-noservername"] : ["-servername", servername])];
    const child = execFile("openssl", args, { timeout: 8_000 }, () => {});
    child.stdin?.end();
    try {
      return await got;
    } finally {
      child.kill();
    }
  } finally {
    server.close();
  }
}

export interface Nginx {
  port: number;
  stop(): Promise<void>;
}

/**
 * A real nginx with `ssl_reject_handshake on` for every name but `servedName`,
 * the reference behaviour for unknownSniAction = "reject_handshake".
 */
export async function startNginxRejecting(servedName: string, cert: SelfSigned): Promise<Nginx> {
  const dir = await mkdtemp(join(tmpdir(), "portcullis-nginx-"));
  const port = await closedPort();
  await writeFile(join(dir, "cert.pem"), cert.cert);
  await writeFile(join(dir, "key.pem"), cert.key);
  const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `${t}_temp_path ${dir}/${t};`).join(" ");
  await writeFile(
    join(dir, "nginx.conf"),
    `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 64; }
http {
  access_log off; ${temp}
  server { listen 127.0.0.1:${port} ssl default_server; ssl_reject_handshake on; }
  server { listen 127.0.0.1:${port} ssl; server_name ${servedName}; ssl_certificate ${dir}/cert.pem; ssl_certificate_key ${dir}/key.pem; return 200 "ok"; }
}
`,
  );
  const child = spawn("nginx", ["-c", join(dir, "nginx.conf"), "-p", dir], { stdio: "ignore" });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const stop = async () => {
    child.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3_000))]);
  };
  try {
    await waitUntil(() => child.exitCode === null, { timeoutMs: 100, message: "nginx to start" });
    const end = performance.now() + 5_000;
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, "127.0.0.1", () => {
          s.destroy();
          resolve(true);
        });
        s.on("error", () => resolve(false));
      });
      if (ok) break;
      if (performance.now() > end || child.exitCode !== null) throw new Error("nginx did not start");
      await sleep(20);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { port, stop };
}
