/**
 * Shared pieces of the gateway tests: a gateway started from a config
 * document on 127.0.0.1 with its log captured, a local HTTP origin, raw
 * client sockets bound to chosen loopback addresses, and curl. Every wait is
 * bounded.
 */
import { execFile } from "node:child_process";
import http from "node:http";
import net from "node:net";
import { Writable } from "node:stream";
import type { Clock } from "../../src/core/clock.js";
import { validateConfig } from "../../src/gateway/config/load.js";
import type { Config } from "../../src/gateway/config/schema.js";
import { Gateway } from "../../src/gateway/gateway.js";
import { hashPassword } from "../../src/gateway/identity/passwords.js";

/** Cheap scrypt for tests (the smallest cost the hash format accepts). */
export const FAST_SCRYPT = { N: 1024, r: 8, p: 1 };

export async function userHash(password: string): Promise<string> {
  return hashPassword(password, FAST_SCRYPT);
}

export function configOf(doc: Record<string, unknown>): Config {
  const r = validateConfig(doc);
  if (!r.ok) throw new Error(`test config invalid: ${r.problems.join("; ")}`);
  return r.config;
}

/** Collects log lines written by the gateway. */
export class LogSink extends Writable {
  readonly lines: string[] = [];
  private partial = "";
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    const text = this.partial + chunk.toString("utf8");
    const parts = text.split("\n");
    this.partial = parts.pop() ?? "";
    for (const p of parts) if (p.length > 0 && this.lines.length < 100_000) this.lines.push(p);
    cb();
  }
  /** Parsed JSON lines (the gateway logs JSON unless told otherwise). */
  records(): Array<Record<string, unknown>> {
    return this.lines.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  }
  events(name: string): Array<Record<string, unknown>> {
    return this.records().filter((r) => r.event === name);
  }
}

export interface Running {
  gateway: Gateway;
  port: number;
  ports: Record<string, number>;
  log: LogSink;
  stop(): Promise<void>;
}

export async function startGateway(doc: Record<string, unknown>, o: { clock?: Clock } = {}): Promise<Running> {
  const log = new LogSink();
  const gateway = new Gateway(configOf(doc), { clock: o.clock, logDestination: log });
  const bound = await gateway.start();
  const ports = Object.fromEntries(bound.map((b) => [b.name, b.port]));
  return { gateway, port: bound[0]!.port, ports, log, stop: async () => void (await gateway.stop()) };
}

/** A connect listener document with one user and a rule that lets it reach loopback. */
export async function connectDoc(extra: { guard?: Record<string, unknown>; log?: Record<string, unknown>; rules?: unknown[]; listener?: Record<string, unknown> } = {}): Promise<Record<string, unknown>> {
  return {
    log: { format: "json", ...extra.log },
    users: { alice: await userHash("s3cret") },
    guard: { ...extra.guard },
    policy: { rule: extra.rules ?? [{ identities: ["alice"], hosts: ["*"], ports: ["1-65535"], cidrs: ["127.0.0.0/8"] }] },
    listener: [{ name: "egress", kind: "connect", bind: "127.0.0.1:0", ...extra.listener }],
  };
}

export interface Origin {
  port: number;
  close(): Promise<void>;
}

/** A local HTTP server that answers "hello from origin". */
export async function startOrigin(host = "127.0.0.1"): Promise<Origin> {
  const server = http.createServer((_req, res) => {
    res.end("hello from origin");
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A TCP echo server. */
export async function startEcho(): Promise<Origin> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => s.destroy());
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const open = new Set<net.Socket>();
  server.on("connection", (s) => {
    open.add(s);
    s.on("close", () => open.delete(s));
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of open) s.destroy();
        server.close(() => r());
      }),
  };
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e as Error);
      },
    );
  });
}

/** A client socket that records what it receives and when it closes. */
export class Client {
  readonly socket: net.Socket;
  received = Buffer.alloc(0);
  closed = false;
  private readonly closedP: Promise<void>;
  private waiters: Array<() => void> = [];

  constructor(port: number, localAddress = "127.0.0.1", host = "127.0.0.1") {
    this.socket = net.connect({ port, host, localAddress });
    this.socket.on("error", () => {});
    this.socket.on("data", (d: Buffer) => {
      this.received = Buffer.concat([this.received, d]);
      for (const w of this.waiters) w();
    });
    this.closedP = new Promise((r) =>
      this.socket.once("close", () => {
        this.closed = true;
        for (const w of this.waiters) w();
        r();
      }),
    );
  }

  connected(ms = 5000): Promise<void> {
    return withTimeout(new Promise<void>((r) => (this.socket.readyState === "open" ? r() : this.socket.once("connect", () => r()))), ms, "connect");
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  text(): string {
    return this.received.toString("latin1");
  }

  /** Waits until the received text contains `s` (or the socket closes). */
  async until(pred: () => boolean, ms = 5000, what = "condition"): Promise<void> {
    await withTimeout(
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (pred() || this.closed) {
            this.waiters = this.waiters.filter((w) => w !== check);
            resolve();
          }
        };
        this.waiters.push(check);
        check();
      }),
      ms,
      what,
    );
  }

  waitClosed(ms = 5000): Promise<void> {
    return withTimeout(this.closedP, ms, "socket close");
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function connectHead(target: string, auth?: { user: string; password: string }): string {
  const lines = [`CONNECT ${target} HTTP/1.1`, `Host: ${target}`];
  if (auth) lines.push(`Proxy-Authorization: Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString("base64")}`);
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/** Whether the guard serves a client from `localAddress`: a served connect client gets a 407 to an unauthenticated CONNECT; a refused one is closed with nothing. */
export async function probe(port: number, localAddress: string): Promise<{ client: Client; served: boolean }> {
  const c = new Client(port, localAddress);
  await c.connected().catch(() => {});
  c.write(connectHead("127.0.0.1:1"));
  await c.until(() => c.text().includes("\r\n\r\n"), 5000, "answer or close");
  return { client: c, served: c.text().startsWith("HTTP/1.1 407") };
}

export interface CurlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function curl(args: string[], timeoutMs = 15_000): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile("curl", ["-sS", "--max-time", String(Math.ceil(timeoutMs / 1000)), ...args], { timeout: timeoutMs + 2000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === "number" ? code : 1, stdout, stderr });
    });
  });
}
