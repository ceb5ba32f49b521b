/**
 * The relays the gateway benchmarks compare, each started as its own fresh
 * process on a free loopback port: a minimal Node `socket.pipe` relay, the
 * Portcullis `tcp` listener with the guard on, and HAProxy in tcp mode; an
 * echo server to relay to; and load generators that drive them.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import net from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("../..", import.meta.url));

export const PIPE_RELAY = `
import net from "node:net";
const [listen, target] = process.argv.slice(1).map(Number);
net.createServer({ allowHalfOpen: true, noDelay: true }, (c) => {
  const u = net.connect({ port: target, host: "127.0.0.1", allowHalfOpen: true, noDelay: true });
  c.on("error", () => { c.destroy(); u.destroy(); });
  u.on("error", () => { c.destroy(); u.destroy(); });
  c.pipe(u); u.pipe(c);
}).listen(listen, "127.0.0.1", () => console.log("ready"));
`;

export const ECHO = `
import net from "node:net";
net.createServer((s) => { s.on("error", () => s.destroy()); s.pipe(s); }).listen(Number(process.argv[1]), "127.0.0.1", () => console.log("ready"));
`;

/** 100 concurrent loops of connect, write 1 byte, read it back, close; prints connections completed per second. */
const CONN_LOAD = `
import net from "node:net";
const [port, seconds, concurrency] = process.argv.slice(1).map(Number);
let done = 0, failed = 0, stop = false;
const one = () => new Promise((resolve) => {
  const s = net.connect({ port, host: "127.0.0.1", noDelay: true });
  s.on("error", () => { failed++; resolve(); });
  s.once("connect", () => s.write("x"));
  s.once("data", () => { done++; s.destroy(); resolve(); });
  s.on("close", () => resolve());
});
const loop = async () => { while (!stop) await one(); };
const t0 = performance.now();
setTimeout(() => { stop = true; }, seconds * 1000);
await Promise.all(Array.from({ length: concurrency }, loop));
console.log(JSON.stringify({ perSec: done / ((performance.now() - t0) / 1000), failed }));
`;

/**
 * Exactly \`count\` connections (connect, 1-byte echo, close), \`concurrency\` at
 * a time, each bounded by a timeout. Prints how many completed and failed.
 */
const CONN_COUNT = `
import net from "node:net";
const [port, count, concurrency, timeoutMs] = process.argv.slice(1).map(Number);
let started = 0, done = 0, failed = 0;
const one = () => new Promise((resolve) => {
  const s = net.connect({ port, host: "127.0.0.1", noDelay: true });
  const t = setTimeout(() => { failed++; s.destroy(); }, timeoutMs);
  s.on("error", () => { failed++; });
  s.once("connect", () => s.write("x"));
  s.once("data", () => { done++; s.end(); });
  s.on("close", () => { clearTimeout(t); resolve(); });
});
const loop = async () => { while (started < count) { started++; await one(); } };
await Promise.all(Array.from({ length: Math.min(concurrency, count) }, loop));
console.log(JSON.stringify({ done, failed }));
`;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export function startProc(cmd: string, args: string[], ready: (out: string) => boolean, what: string, timeoutMs = 20_000, env: NodeJS.ProcessEnv = process.env): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"], env });
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${what} did not start: ${out.slice(-400)}`));
    }, timeoutMs);
    const check = (d: Buffer): void => {
      if (out.length < 100_000) out += d.toString();
      if (ready(out)) {
        clearTimeout(timer);
        child.stdout!.removeAllListeners("data");
        child.stderr!.removeAllListeners("data");
        // Keep draining so a chatty process never blocks on a full pipe.
        child.stdout!.resume();
        child.stderr!.resume();
        resolve(child);
      }
    };
    child.stdout!.on("data", check);
    child.stderr!.on("data", check);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}: ${out.slice(-400)}`));
    });
  });
}

/** Resolves once `port` accepts a connection; polls every 50 ms for up to `timeoutMs`. */
export async function waitListening(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect({ port, host: "127.0.0.1" });
      s.once("connect", () => {
        s.destroy();
        r(true);
      });
      s.once("error", () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

export function exec(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
}

/** New connections per second for `seconds`, 100 concurrent clients. */
export async function connRate(port: number, seconds: number): Promise<{ perSec: number; failed: number }> {
  const out = await exec(process.execPath, ["--input-type=module", "-e", CONN_LOAD, String(port), String(seconds), "100"], (seconds + 30) * 1000);
  return JSON.parse(out.trim().split("\n").pop()!) as { perSec: number; failed: number };
}

/** Exactly `count` connections through `port`, `concurrency` at a time, each within `perConnMs`, all within `timeoutMs`. */
export async function connections(port: number, count: number, concurrency: number, timeoutMs: number, perConnMs = 10_000): Promise<{ done: number; failed: number }> {
  const out = await exec(process.execPath, ["--input-type=module", "-e", CONN_COUNT, String(port), String(count), String(concurrency), String(perConnMs)], timeoutMs);
  return JSON.parse(out.trim().split("\n").pop()!) as { done: number; failed: number };
}

/** CPU seconds (user + system, every thread) a process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start at field 3; utime and stime are fields 14 and 15.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
}

/** USER_HZ: the unit of utime and stime in /proc (100 on every Linux build in use). */
const CLOCK_TICKS = 100;

export interface Relay {
  name: string;
  port: number;
  pid: number;
  stop(): void;
}

export async function nodePipe(target: number): Promise<Relay> {
  const port = await freePort();
  const p = await startProc(process.execPath, ["--input-type=module", "-e", PIPE_RELAY, String(port), String(target)], (o) => o.includes("ready"), "node pipe relay");
  return { name: "node pipe relay", port, pid: p.pid!, stop: () => p.kill("SIGKILL") };
}

/**
 * A gateway configuration with one `tcp` listener and the guard on, sized
 * not to refuse the benchmark's own clients: every connection still pays
 * every check. `extra` lines are appended (an admin section, say).
 */
export async function gatewayConfig(dir: string, port: number, target: number, extra: string[] = [], top: string[] = []): Promise<string> {
  const file = join(dir, `gateway-${port}.toml`);
  await writeFile(
    file,
    [
      ...top,
      "[log]",
      'format = "json"',
      "[guard]",
      "max_connections_per_ip = 10_000",
      "max_connections = 100_000",
      'connection_rate = { limit = 1_000_000, window = "1s" }',
      'prefix_connection_rate = { limit = 1_000_000, window = "1s" }',
      "[[listener]]",
      'name = "relay"',
      'kind = "tcp"',
      `bind = "127.0.0.1:${port}"`,
      `upstream = "127.0.0.1:${target}"`,
      ...extra,
      "",
    ].join("\n"),
  );
  return file;
}

/**
 * The checkout whose gateway is measured: this one, or the one named by
 * BENCH_GATEWAY_ROOT (another worktree, to compare two versions; it needs
 * its own node_modules, a symlink to this one's will do).
 */
export const gatewayRoot = process.env.BENCH_GATEWAY_ROOT ?? root;

/** The command line that runs the gateway of checkout `at` from source with `file`. */
export function gatewayArgs(file: string, at = gatewayRoot): string[] {
  return ["--import", "tsx", join(at, "src/cli/main.ts"), "run", "-c", file];
}

export interface GatewayRunOptions {
  /** `workers = N` (default: the key left out, one process). */
  workers?: number;
  /** How the cluster hands connections to workers: "rr" (the primary accepts and passes each on) or "none" (every worker accepts on the shared socket). */
  schedPolicy?: "rr" | "none";
  /** Count in this Redis (`store.kind = "redis"`, each worker talking to it) instead of the memory store. */
  redisUrl?: string;
}

/** The gateway of checkout `at` (default: the one measured), named `name`. */
export async function portcullis(target: number, dir: string, at = gatewayRoot, name = "portcullis tcp (guard on)", o: GatewayRunOptions = {}): Promise<Relay> {
  const port = await freePort();
  const top = o.workers === undefined ? [] : [`workers = ${o.workers}`, 'shutdown_timeout = "1s"'];
  // A fresh key prefix per run: no state of an earlier run counts.
  if (o.redisUrl !== undefined) top.push("[store]", 'kind = "redis"', `url = "${o.redisUrl}"`, `prefix = "bench-${process.pid}-${port}:"`);
  const file = await gatewayConfig(dir, port, target, [], top);
  const env = o.schedPolicy === undefined ? process.env : { ...process.env, NODE_CLUSTER_SCHED_POLICY: o.schedPolicy };
  const ready = (out: string): boolean => (o.workers !== undefined && o.workers > 1 ? out.includes("workers up") : out.includes("up on"));
  const p = await startProc(process.execPath, gatewayArgs(file, at), ready, "portcullis", 60_000, env);
  return { name, port, pid: p.pid!, stop: () => p.kill("SIGTERM") };
}

export async function haproxy(target: number, dir: string): Promise<Relay> {
  const port = await freePort();
  const cfg = join(dir, `haproxy-${target}-${port}.cfg`);
  await writeFile(
    cfg,
    `global\n  maxconn 5000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\nlisten relay\n  bind 127.0.0.1:${port}\n  server s1 127.0.0.1:${target}\n`,
  );
  const p = spawn("haproxy", ["-f", cfg, "-db"], { stdio: "ignore" });
  await waitListening(port);
  return { name: "haproxy tcp", port, pid: p.pid!, stop: () => p.kill("SIGKILL") };
}

export async function echoServer(): Promise<{ port: number; stop(): void }> {
  const port = await freePort();
  const p = await startProc(process.execPath, ["--input-type=module", "-e", ECHO, String(port)], (o) => o.includes("ready"), "echo");
  return { port, stop: () => p.kill("SIGKILL") };
}
