/**
 * The wrong-password flood: a real `portcullis run` process with a connect
 * listener (proxy Basic auth, one user at the default scrypt cost) attacked
 * by `attackers` concurrent loops, each sending one wrong password from a
 * fresh loopback address (127.128.0.0/10) per connection, while a few
 * legitimate clients (each from its own address, with the right password)
 * keep opening tunnels. Legitimate attempts are measured before, during and
 * after the flood: success ratio and latency percentiles.
 *
 * The attackers run in a worker thread, so the legitimate clients' timings
 * are not delayed by the driver's own attack loop. Everything is bounded:
 * the flood lasts `durationMs`, every attempt has a timeout, and the
 * gateway process is killed at the end.
 *
 * Used by `npm run stress` (long settings) and by the auth flood test
 * (small settings).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { DEFAULT_SCRYPT, type ScryptParams, hashPassword } from "../../src/gateway/identity/passwords.js";

const root = fileURLToPath(new URL("../..", import.meta.url));

export interface AuthFloodOptions {
  /** How long the attack lasts. */
  durationMs: number;
  /** Concurrent attacker loops (each: connect from a fresh address, one wrong password, wait for the answer). */
  attackers: number;
  /** Legitimate clients, each from its own address in 127.10.0.0/16 (default 4). */
  legitClients?: number;
  /** Pause between one legitimate client's attempts (default 200 ms). */
  legitPauseMs?: number;
  /** Legitimate traffic measured before the attack starts (default 2000 ms; longer until each client has logged in once). */
  beforeMs?: number;
  /** Legitimate traffic measured after the attack ends (default 2000 ms). */
  afterMs?: number;
  /** An attempt not answered in this time is a failure (default 10 s). */
  attemptTimeoutMs?: number;
  /** Cost of the user's hash (default: the product's default cost). */
  scrypt?: ScryptParams;
  /** Legitimate clients open tunnels to "localhost" (resolved by the gateway) instead of 127.0.0.1. */
  byName?: boolean;
  /** Extra TOML appended to the gateway's configuration (e.g. an [auth] section). */
  extraToml?: string;
  /** Extra environment of the gateway process (e.g. UV_THREADPOOL_SIZE). */
  env?: Record<string, string>;
}

export interface PhaseStats {
  attempts: number;
  ok: number;
  /** ok / attempts (1 when there were no attempts). */
  successRatio: number;
  /** Latency of successful attempts, ms (NaN when none). */
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
}

export interface AuthFloodResult {
  before: PhaseStats;
  during: PhaseStats;
  after: PhaseStats;
  /** Attacker connections that got an answer or a close, and per second of flood. */
  attackerAttempts: number;
  attackerPerSecond: number;
}

interface Attempt {
  startedAt: number;
  ok: boolean;
  ms: number;
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

function stats(attempts: Attempt[]): PhaseStats {
  const ok = attempts.filter((a) => a.ok);
  const ms = ok.map((a) => a.ms).sort((a, b) => a - b);
  return {
    attempts: attempts.length,
    ok: ok.length,
    successRatio: attempts.length === 0 ? 1 : ok.length / attempts.length,
    p50Ms: percentile(ms, 0.5),
    p95Ms: percentile(ms, 0.95),
    maxMs: ms.length ? ms[ms.length - 1]! : NaN,
  };
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}

/** One CONNECT attempt: true when the gateway answered 200 within the timeout. */
function attempt(port: number, localAddress: string, target: string, auth: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let got = "";
    const s = net.connect({ port, host: "127.0.0.1", localAddress });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.on("error", () => done(false));
    s.on("close", () => done(false));
    s.once("connect", () => s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nProxy-Authorization: ${auth}\r\n\r\n`));
    s.on("data", (d: Buffer) => {
      got += d.toString("latin1");
      if (got.includes("\r\n\r\n") || got.length > 4096) done(got.startsWith("HTTP/1.1 200"));
    });
  });
}

/** The attackers' loop, as plain JavaScript for a worker thread. */
const ATTACKER = `
const { parentPort, workerData } = require("node:worker_threads");
const net = require("node:net");
const { port, attackers, timeoutMs, auth } = workerData;
let stop = false, n = 0, answered = 0;
const sockets = new Set();
parentPort.on("message", (m) => {
  if (m !== "stop") return;
  stop = true;
  for (const s of sockets) s.destroy();
});
// Fresh addresses from 127.128.0.0/10, one per connection.
const next = () => { const i = n++ % 4_000_000 + 1; return "127." + (128 + (i >> 16)) + "." + ((i >> 8) & 255) + "." + (i & 255); };
const one = () => new Promise((resolve) => {
  const s = net.connect({ port, host: "127.0.0.1", localAddress: next() });
  sockets.add(s);
  const done = (answer) => { if (answer) answered++; clearTimeout(t); sockets.delete(s); s.destroy(); resolve(); };
  const t = setTimeout(() => done(false), timeoutMs);
  s.on("error", () => done(false));
  s.on("close", () => done(true));
  s.once("connect", () => s.write("CONNECT 127.0.0.1:9 HTTP/1.1\\r\\nHost: x\\r\\nProxy-Authorization: " + auth + "\\r\\n\\r\\n"));
  s.on("data", () => done(true));
});
const loop = async () => { while (!stop) await one(); };
Promise.all(Array.from({ length: attackers }, loop)).then(() => parentPort.postMessage({ answered }));
`;

async function startEcho(): Promise<{ port: number; close(): void }> {
  const open = new Set<net.Socket>();
  const server = net.createServer((s) => {
    open.add(s);
    s.on("close", () => open.delete(s));
    s.on("error", () => s.destroy());
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const s of open) s.destroy();
      server.close();
    },
  };
}

/** Starts `portcullis run` and resolves with the connect listener's port (bounded wait). */
function startGateway(file: string, env: Record<string, string>): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [join(root, "bin/portcullis.js"), "run", "-c", file], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  return new Promise((resolve, reject) => {
    let err = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`gateway did not start in 30 s: ${err.slice(0, 500)}`));
    }, 30_000);
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      const m = /listener flood \(connect\) up on 127\.0\.0\.1:(\d+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]) });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code}: ${err.slice(0, 500)}`));
    });
  });
}

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const hard = setTimeout(() => child.kill("SIGKILL"), 5000);
    child.once("exit", () => {
      clearTimeout(hard);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runAuthFlood(o: AuthFloodOptions): Promise<AuthFloodResult> {
  const legitClients = o.legitClients ?? 4;
  const pause = o.legitPauseMs ?? 200;
  const beforeMs = o.beforeMs ?? 2000;
  const afterMs = o.afterMs ?? 2000;
  const timeoutMs = o.attemptTimeoutMs ?? 10_000;
  const dir = await mkdtemp(join(tmpdir(), "portcullis-auth-flood-"));
  const echo = await startEcho();
  let gw: { child: ChildProcess; port: number } | undefined;
  let worker: Worker | undefined;
  try {
    const hash = await hashPassword("right-password", o.scrypt ?? DEFAULT_SCRYPT);
    const file = join(dir, "flood.toml");
    await writeFile(
      file,
      [
        "[log]",
        'level = "info"',
        "[users]",
        `alice = "${hash}"`,
        "[[policy.rule]]",
        'identities = ["alice"]',
        'hosts = ["localhost"]',
        `ports = [${echo.port}]`,
        'cidrs = ["127.0.0.0/8"]',
        "[[listener]]",
        'name = "flood"',
        'kind = "connect"',
        'bind = "127.0.0.1:0"',
        o.extraToml ?? "",
      ].join("\n"),
    );
    gw = await startGateway(file, o.env ?? {});
    const port = gw.port;
    const target = `${o.byName ? "localhost" : "127.0.0.1"}:${echo.port}`;
    const good = basic("alice", "right-password");

    const attempts: Attempt[] = [];
    let running = true;
    const legit = async (i: number): Promise<void> => {
      const local = `127.10.${i >> 8}.${(i & 255) + 1}`;
      while (running) {
        const t0 = performance.now();
        const ok = await attempt(port, local, target, good, timeoutMs);
        attempts.push({ startedAt: t0, ok, ms: performance.now() - t0 });
        await sleep(pause);
      }
    };
    const t0 = performance.now();
    const loops = Array.from({ length: legitClients }, (_, i) => legit(i));
    // The flood starts once every legitimate client has had an answer (they are "legitimate" by having logged in), bounded by the attempt timeout.
    const settled = performance.now() + timeoutMs;
    await sleep(beforeMs);
    while (attempts.filter((a) => a.ok).length < legitClients && performance.now() < settled) await sleep(50);

    const floodStart = performance.now();
    worker = new Worker(ATTACKER, { eval: true, workerData: { port, attackers: o.attackers, timeoutMs, auth: basic("alice", "wrong-password") } });
    const attackDone = new Promise<number>((resolve) => {
      worker!.once("message", (m: { answered: number }) => resolve(m.answered));
      worker!.once("error", () => resolve(0));
      worker!.once("exit", () => resolve(0));
    });
    await sleep(o.durationMs);
    worker.postMessage("stop");
    const floodEnd = performance.now();
    const answered = await attackDone;
    await sleep(Math.max(0, floodEnd + afterMs - performance.now()));
    running = false;
    await Promise.all(loops);

    const phase = (from: number, to: number): PhaseStats => stats(attempts.filter((a) => a.startedAt >= from && a.startedAt < to));
    return {
      before: phase(t0, floodStart),
      during: phase(floodStart, floodEnd),
      after: phase(floodEnd, floodEnd + afterMs),
      attackerAttempts: answered,
      attackerPerSecond: answered / ((floodEnd - floodStart) / 1000),
    };
  } finally {
    await worker?.terminate();
    if (gw) await stopProcess(gw.child);
    echo.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Prints one result as a table row set (for `npm run stress` and by hand). */
export function formatAuthFlood(r: AuthFloodResult): string {
  const row = (name: string, p: PhaseStats): string =>
    `| ${name} | ${p.ok}/${p.attempts} (${(100 * p.successRatio).toFixed(0)}%) | ${p.p50Ms.toFixed(0)} | ${p.p95Ms.toFixed(0)} | ${p.maxMs.toFixed(0)} |`;
  return [
    "| legitimate clients | success | p50 ms | p95 ms | max ms |",
    "|---|---|---|---|---|",
    row("before", r.before),
    row("during", r.during),
    row("after", r.after),
    `attacker attempts answered: ${r.attackerAttempts} (${r.attackerPerSecond.toFixed(1)}/s)`,
  ].join("\n");
}

// `node --import tsx bench/stress/auth-flood.ts [seconds] [attackers]`: one run with the printed table.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const seconds = Number(process.argv[2] ?? 10);
  const attackers = Number(process.argv[3] ?? 50);
  const byName = process.env.AUTH_FLOOD_BY_NAME === "1";
  const r = await runAuthFlood({ durationMs: seconds * 1000, attackers, byName, extraToml: process.env.AUTH_FLOOD_TOML?.replace(/\\n/g, "\n") });
  console.log(`auth flood: ${seconds} s, ${attackers} attackers, default scrypt cost${byName ? ", tunnels by name" : ""}`);
  console.log(formatAuthFlood(r));
}
