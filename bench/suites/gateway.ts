/**
 * The gateway's relay path against its peers, in one run on one machine:
 * iperf3 throughput (one stream and 8 streams) through the `tcp` listener
 * with the guard on, a minimal Node `socket.pipe` relay, and HAProxy in tcp
 * mode, next to the direct loopback figure; then new connections per second
 * (100 concurrent clients, connect + 1-byte echo + close) through each.
 * Every process is started fresh and stopped at the end.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const title = "Gateway relay: tcp listener (guard on) vs a plain Node pipe relay and HAProxy (tcp mode)";

const root = fileURLToPath(new URL("../..", import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
/** Rounds over all paths, interleaved; each figure is the median of its rounds (the machine is shared and noisy). */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const PIPE_RELAY = `
import net from "node:net";
const [listen, target] = process.argv.slice(1).map(Number);
net.createServer({ allowHalfOpen: true, noDelay: true }, (c) => {
  const u = net.connect({ port: target, host: "127.0.0.1", allowHalfOpen: true, noDelay: true });
  c.on("error", () => { c.destroy(); u.destroy(); });
  u.on("error", () => { c.destroy(); u.destroy(); });
  c.pipe(u); u.pipe(c);
}).listen(listen, "127.0.0.1", () => console.log("ready"));
`;

const ECHO = `
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

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function startProc(cmd: string, args: string[], ready: (out: string) => boolean, what: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${what} did not start: ${out.slice(-400)}`)), 20_000);
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

async function waitListening(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
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

function exec(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
}

async function iperf(port: number, streams: number): Promise<number> {
  try {
    return await iperfOnce(port, streams);
  } catch {
    // iperf3's server takes one test at a time and may still be closing the last one.
    await new Promise((r) => setTimeout(r, 500));
    return iperfOnce(port, streams);
  }
}

async function iperfOnce(port: number, streams: number): Promise<number> {
  const out = await exec("iperf3", ["-c", "127.0.0.1", "-p", String(port), "-t", String(SECONDS), "-P", String(streams), "-J"], (SECONDS + 20) * 1000);
  const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second / 1e9;
}

async function connRate(port: number): Promise<{ perSec: number; failed: number }> {
  const out = await exec(process.execPath, ["--input-type=module", "-e", CONN_LOAD, String(port), String(SECONDS), "100"], (SECONDS + 30) * 1000);
  return JSON.parse(out.trim().split("\n").pop()!) as { perSec: number; failed: number };
}

interface Relay {
  name: string;
  port: number;
  stop(): void;
}

async function nodePipe(target: number): Promise<Relay> {
  const port = await freePort();
  const p = await startProc(process.execPath, ["--input-type=module", "-e", PIPE_RELAY, String(port), String(target)], (o) => o.includes("ready"), "node pipe relay");
  return { name: "node pipe relay", port, stop: () => p.kill("SIGKILL") };
}

async function portcullis(target: number, dir: string): Promise<Relay> {
  const port = await freePort();
  const file = join(dir, `gateway-${target}.toml`);
  await writeFile(
    file,
    [
      "[log]",
      'format = "json"',
      "[guard]",
      // Guard on, sized not to refuse the benchmark's own clients: every connection still pays every check.
      "max_connections_per_ip = 10_000",
      "max_connections = 100_000",
      'connection_rate = { limit = 1_000_000, window = "1s" }',
      'prefix_connection_rate = { limit = 1_000_000, window = "1s" }',
      "[[listener]]",
      'name = "relay"',
      'kind = "tcp"',
      `bind = "127.0.0.1:${port}"`,
      `upstream = "127.0.0.1:${target}"`,
      "",
    ].join("\n"),
  );
  const p = await startProc(process.execPath, ["--import", "tsx", "src/cli/main.ts", "run", "-c", file], (o) => o.includes("up on"), "portcullis");
  return { name: "portcullis tcp (guard on)", port, stop: () => p.kill("SIGTERM") };
}

async function haproxy(target: number, dir: string): Promise<Relay> {
  const port = await freePort();
  const cfg = join(dir, `haproxy-${target}.cfg`);
  await writeFile(
    cfg,
    `global\n  maxconn 5000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\nlisten relay\n  bind 127.0.0.1:${port}\n  server s1 127.0.0.1:${target}\n`,
  );
  const p = spawn("haproxy", ["-f", cfg, "-db"], { stdio: "ignore" });
  await waitListening(port);
  return { name: "haproxy tcp", port, stop: () => p.kill("SIGKILL") };
}

const gbit = (n: number) => `${n.toFixed(1)} Gbit/s`;
const ratio = (a: number, b: number) => `${((a / b) * 100).toFixed(0)}%`;

/** The tools this suite drives, with the Debian package that brings each. */
const TOOLS: [string, string][] = [
  ["iperf3", "iperf3"],
  ["haproxy", "haproxy"],
];

export async function run(): Promise<void> {
  const missing = TOOLS.filter(([cmd]) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status !== 0);
  if (missing.length > 0) throw new Error(`needs ${missing.map(([c]) => c).join(", ")}: apt-get install -y ${missing.map(([, p]) => p).join(" ")}`);
  const dir = await mkdtemp(join(tmpdir(), "portcullis-bench-"));
  const stops: Array<() => void> = [];
  try {
    const iperfPort = await freePort();
    const iperfServer = spawn("iperf3", ["-s", "-p", String(iperfPort)], { stdio: "ignore" });
    stops.push(() => iperfServer.kill("SIGKILL"));
    await waitListening(iperfPort);
    const echoPort = await freePort();
    const echo = await startProc(process.execPath, ["--input-type=module", "-e", ECHO, String(echoPort)], (o) => o.includes("ready"), "echo");
    stops.push(() => echo.kill("SIGKILL"));

    const make = async (target: number): Promise<Relay[]> => {
      const rs = [await nodePipe(target), await portcullis(target, dir), await haproxy(target, dir)];
      for (const r of rs) stops.push(r.stop);
      return rs;
    };

    console.log(`iperf3 over loopback, ${SECONDS} s per run, median of ${ROUNDS} interleaved rounds`);
    const relays = await make(iperfPort);
    const paths: Array<{ name: string; port: number }> = [{ name: "direct (no relay)", port: iperfPort }, ...relays];
    const one = paths.map(() => [] as number[]);
    const eight = paths.map(() => [] as number[]);
    for (let r = 0; r < ROUNDS; r++) {
      for (const [i, p] of paths.entries()) {
        one[i]!.push(await iperf(p.port, 1));
        eight[i]!.push(await iperf(p.port, 8));
      }
    }
    const rows = paths.map((p, i) => [p.name, median(one[i]!), median(eight[i]!)] as const);
    const pipe = rows[1]!;
    console.log(`| path | 1 stream | vs node pipe | 8 streams | vs node pipe |`);
    console.log(`|---|---|---|---|---|`);
    for (const [name, o, e] of rows) console.log(`| ${name} | ${gbit(o)} | ${ratio(o, pipe[1])} | ${gbit(e)} | ${ratio(e, pipe[2])} |`);

    console.log(`\nnew connections per second, 100 concurrent clients (connect, 1-byte echo, close), ${SECONDS} s, median of ${ROUNDS} interleaved rounds`);
    const crelays = await make(echoPort);
    const cpaths: Array<{ name: string; port: number }> = [{ name: "direct (no relay)", port: echoPort }, ...crelays];
    const rates = cpaths.map(() => [] as number[]);
    const failures = cpaths.map(() => 0);
    for (let r = 0; r < ROUNDS; r++) {
      for (const [i, p] of cpaths.entries()) {
        const c = await connRate(p.port);
        rates[i]!.push(c.perSec);
        failures[i]! += c.failed;
      }
    }
    const base = median(rates[1]!);
    console.log(`| path | conn/s | vs node pipe | failed |`);
    console.log(`|---|---|---|---|`);
    for (const [i, p] of cpaths.entries()) {
      const m = median(rates[i]!);
      console.log(`| ${p.name} | ${(m / 1000).toFixed(2)} k | ${ratio(m, base)} | ${failures[i]} |`);
    }
  } finally {
    for (const s of stops) s();
    await rm(dir, { recursive: true, force: true });
  }
}
