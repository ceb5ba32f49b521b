/**
 * Pieces of the http-listener tests: a real upstream on 127.0.0.1, a gateway
 * started from TOML text, and curl with its reply parsed. Every wait is
 * bounded.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Clock } from "../../../src/core/clock.js";
import { loadConfigFile } from "../../../src/gateway/config/load.js";
import type { Config } from "../../../src/gateway/config/schema.js";
import { Gateway } from "../../../src/gateway/gateway.js";
import { LogSink } from "../../gateway/fixtures.js";

export interface Upstream {
  port: number;
  /** Requests seen: path and the X-Forwarded-For the gateway sent. */
  seen: Array<{ path: string; xff: string | undefined }>;
  close(): Promise<void>;
}

/** An origin that answers `upstream saw <path>` (bounded record of what it saw). */
export async function startUpstream(): Promise<Upstream> {
  const seen: Upstream["seen"] = [];
  const server = http.createServer((req, res) => {
    if (seen.length < 1000) seen.push({ path: req.url ?? "", xff: req.headers["x-forwarded-for"] as string | undefined });
    // A login service: password "right" succeeds, anything else is 401 (the lockout reads the status).
    if (req.url === "/login") {
      let form = "";
      req.setEncoding("utf8");
      req.on("data", (d: string) => (form = (form + d).slice(0, 4096)));
      req.on("end", () => {
        const ok = new URLSearchParams(form).get("password") === "right";
        res.writeHead(ok ? 200 : 401, { "content-type": "text/plain" });
        res.end(ok ? "welcome" : "no");
      });
      return;
    }
    const body = `upstream saw ${req.url}`;
    res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Writes TOML text to a temporary file and loads it as `portcullis run` would. */
export function configFromToml(text: string): Config {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-http-"));
  try {
    const file = join(dir, "portcullis.toml");
    writeFileSync(file, text);
    const r = loadConfigFile(file, {});
    if (!r.ok) throw new Error(`config refused: ${r.problems.join("; ")}`);
    return r.config;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface RunningHttp {
  gateway: Gateway;
  /** Port of each listener by name. */
  ports: Record<string, number>;
  log: LogSink;
  stop(): Promise<void>;
}

export async function startFromToml(text: string, o: { clock?: Clock } = {}): Promise<RunningHttp> {
  const log = new LogSink();
  const gateway = new Gateway(configFromToml(text), { clock: o.clock, logDestination: log });
  const bound = await gateway.start();
  return { gateway, ports: Object.fromEntries(bound.map((b) => [b.name, b.port])), log, stop: async () => void (await gateway.stop()) };
}

export interface CurlReply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** curl -i; rejects when curl gets no response at all (exit code and stderr in the message). */
export function curl(args: string[]): Promise<CurlReply> {
  return new Promise((resolve, reject) => {
    execFile("curl", ["-s", "-S", "-i", "--max-time", "10", ...args], { timeout: 15_000, encoding: "latin1", maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err && !stdout) return reject(new Error(`curl failed (${(err as { code?: unknown }).code}): ${stderr.trim()}`));
      const i = stdout.indexOf("\r\n\r\n");
      if (i < 0) return reject(new Error(`no response head in ${JSON.stringify(stdout.slice(0, 200))}`));
      const [statusLine, ...lines] = stdout.slice(0, i).split("\r\n");
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const c = l.indexOf(":");
        headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
      }
      resolve({ status: Number(statusLine!.split(" ")[1]), headers, body: stdout.slice(i + 4) });
    });
  });
}

/** `n` sequential requests with the same curl arguments. */
export async function curlTimes(n: number, args: string[]): Promise<CurlReply[]> {
  const out: CurlReply[] = [];
  for (let i = 0; i < n; i++) out.push(await curl(args));
  return out;
}
