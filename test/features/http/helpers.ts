/**
 * Shared pieces of the HTTP tests: real servers on 127.0.0.1, requests from
 * chosen loopback addresses (127.0.0.2, 127.0.0.3 ... stand for different
 * clients), a logger that records, and RateLimit header parsing through an
 * independent Structured Fields implementation.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { parseList } from "structured-headers";
import type { HttpLogger } from "../../../src/features/http/index.js";

export const TIMEOUT_MS = 5000;

export async function listen(server: http.Server | import("node:net").Server, host = "127.0.0.1"): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

export function close(server: http.Server): Promise<void> {
  server.closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface RequestOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Source address of the client socket (a 127.0.0.0/8 address). */
  from?: string;
  timeoutMs?: number;
}

/** One request on a fresh connection; rejects after `timeoutMs`. */
export function request(port: number, o: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: o.method ?? "GET",
        path: o.path ?? "/",
        headers: o.body !== undefined ? { "content-length": String(Buffer.byteLength(o.body)), ...o.headers } : o.headers,
        localAddress: o.from ?? "127.0.0.1",
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") });
        });
        res.on("error", reject);
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`request ${o.method ?? "GET"} ${o.path ?? "/"} timed out`));
    }, o.timeoutMs ?? TIMEOUT_MS);
    req.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end(o.body);
  });
}

/** Starts a request and hands back the ClientRequest, so a test can abort it while it waits. */
export function startRequest(port: number, o: RequestOptions = {}): { req: http.ClientRequest; reply: Promise<Reply> } {
  let req!: http.ClientRequest;
  const reply = new Promise<Reply>((resolve, reject) => {
    req = http.request({ host: "127.0.0.1", port, method: o.method ?? "GET", path: o.path ?? "/", headers: o.headers, localAddress: o.from ?? "127.0.0.1", agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    req.end(o.body);
  });
  return { req, reply };
}

export interface LogEntry {
  level: "warn" | "info";
  msg: string;
  fields: Record<string, unknown>;
}

export function recordingLogger(): HttpLogger & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  return {
    entries,
    warn: (msg, fields) => entries.push({ level: "warn", msg, fields }),
    info: (msg, fields) => entries.push({ level: "info", msg, fields }),
  };
}

export interface SfItem {
  name: string;
  params: Record<string, unknown>;
}

/** Parses RateLimit / RateLimit-Policy with a Structured Fields parser; every member must be a string item. */
export function parseRateLimit(v: string | string[] | undefined): SfItem[] {
  if (typeof v !== "string") throw new Error(`expected one header value, got ${JSON.stringify(v)}`);
  return parseList(v).map((member) => {
    const [value, params] = member as [unknown, Map<string, unknown>];
    if (typeof value !== "string") throw new Error(`policy name is not an sf-string: ${JSON.stringify(value)}`);
    return { name: value, params: Object.fromEntries(params) };
  });
}
