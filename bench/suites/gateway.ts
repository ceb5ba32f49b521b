/**
 * The gateway's relay path against its peers, in one run on one machine:
 * iperf3 throughput (one stream and 8 streams) through the `tcp` listener
 * with the guard on, a minimal Node `socket.pipe` relay, and HAProxy in tcp
 * mode, next to the direct loopback figure; then new connections per second
 * (100 concurrent clients, connect + 1-byte echo + close) through each.
 * The gateway runs as one process (workers = 1) and as workers = 2, the
 * latter both ways node:cluster can hand out connections: round-robin (the
 * primary accepts and passes each socket on) and shared handle (every
 * worker accepts on the one listening socket); and workers = 2 counting
 * in Redis (REDIS_URL) rather than in the primary's memory store. A last
 * part sets one gateway process counting in Redis against the same in
 * memory and the pipe (BENCH_GATEWAY_SECTIONS=store runs only it).
 * Every process is started fresh and stopped at the end.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Relay, connRate, cpuSeconds, echoServer, exec, freePort, haproxy, median, nodePipe, portcullis, waitListening } from "../gateway/relays.js";

export const title = "Gateway relay: tcp listener (guard on) vs a plain Node pipe relay and HAProxy (tcp mode)";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
/** Rounds over all paths, interleaved; each figure is the median of its rounds (the machine is shared and noisy). */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/**
 * Which parts run (comma-separated; default all): "throughput" (iperf3),
 * "connections" (new connections/s through every relay), "store" (new
 * connections/s, one gateway process with the guard counting in Redis
 * against the same in memory, next to the pipe).
 */
const SECTIONS = new Set((process.env.BENCH_GATEWAY_SECTIONS ?? "throughput,connections,store").split(",").map((x) => x.trim()));

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
    const echo = await echoServer();
    stops.push(echo.stop);
    const echoPort = echo.port;

    const make = async (target: number): Promise<Relay[]> => {
      const rs = [
        await nodePipe(target),
        await portcullis(target, dir, undefined, "portcullis workers=1 (guard on)"),
        await portcullis(target, dir, undefined, "portcullis workers=2, round-robin", { workers: 2, schedPolicy: "rr" }),
        await portcullis(target, dir, undefined, "portcullis workers=2, shared handle", { workers: 2, schedPolicy: "none" }),
        await portcullis(target, dir, undefined, "portcullis workers=2, round-robin, Redis store", { workers: 2, schedPolicy: "rr", redisUrl: REDIS_URL }),
        await haproxy(target, dir),
      ];
      for (const r of rs) stops.push(r.stop);
      return rs;
    };

    if (SECTIONS.has("throughput")) await throughput(iperfPort, make);
    if (SECTIONS.has("connections")) await connectionRates(echoPort, make);
    if (SECTIONS.has("store")) await storeRates(echoPort, dir, stops);
  } finally {
    for (const s of stops) s();
    await rm(dir, { recursive: true, force: true });
  }
}

async function throughput(iperfPort: number, make: (target: number) => Promise<Relay[]>): Promise<void> {
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
}

async function connectionRates(echoPort: number, make: (target: number) => Promise<Relay[]>): Promise<void> {
  console.log(`\nnew connections per second, 100 concurrent clients (connect, 1-byte echo, close), ${SECONDS} s, median of ${ROUNDS} interleaved rounds`);
  const crelays = await make(echoPort);
  const cpaths: Array<{ name: string; port: number }> = [{ name: "direct (no relay)", port: echoPort }, ...crelays];
  const rates = cpaths.map(() => [] as number[]);
  const failures = cpaths.map(() => 0);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [i, p] of cpaths.entries()) {
      const c = await connRate(p.port, SECONDS);
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
}

/**
 * The guard's store on the connection path: one gateway process (the
 * `tcp` listener, every guard rule on) counting in Redis, the same counting
 * in memory, and the plain pipe relay, measured in interleaved rounds; the
 * ratio column is the median of each round's Redis/memory ratio, which
 * cancels load drifting between rounds.
 */
async function storeRates(echoPort: number, dir: string, stops: Array<() => void>): Promise<void> {
  const rounds = Number(process.env.BENCH_STORE_ROUNDS ?? Math.max(ROUNDS, 5));
  console.log(`\nnew connections per second by guard store, 100 concurrent clients, ${SECONDS} s, ${rounds} interleaved rounds (redis ${REDIS_URL})`);
  const paths = [
    await nodePipe(echoPort),
    await portcullis(echoPort, dir, undefined, "portcullis tcp, guard on the memory store"),
    await portcullis(echoPort, dir, undefined, "portcullis tcp, guard on the Redis store", { redisUrl: REDIS_URL }),
  ];
  // BENCH_GATEWAY_COMPARE=<checkout>: that checkout's gateway on Redis as a fourth row (a before/after of the Redis path).
  const compare = process.env.BENCH_GATEWAY_COMPARE;
  if (compare !== undefined) paths.push(await portcullis(echoPort, dir, compare, `portcullis tcp, guard on the Redis store (${compare})`, { redisUrl: REDIS_URL }));
  for (const r of paths) stops.push(r.stop);
  const rates = paths.map(() => [] as number[]);
  // The relay process's own CPU per 1,000 connections: what a connection costs it, whatever the load lets it reach.
  const cpu = paths.map(() => [] as number[]);
  const failures = paths.map(() => 0);
  const redisVsMemory: number[] = [];
  for (let r = 0; r < rounds; r++) {
    // A different order each round: no path always runs right after the same one.
    const forward = paths.map((_, i) => i);
    const order = r % 2 === 0 ? forward : forward.reverse();
    for (const i of order) {
      const before = cpuSeconds(paths[i]!.pid);
      const c = await connRate(paths[i]!.port, SECONDS);
      const used = cpuSeconds(paths[i]!.pid) - before;
      rates[i]!.push(c.perSec);
      cpu[i]!.push(c.perSec > 0 ? (used / (c.perSec * SECONDS)) * 1000 : NaN);
      failures[i]! += c.failed;
    }
    redisVsMemory.push(rates[2]![r]! / rates[1]![r]!);
  }
  const pipe = median(rates[0]!);
  console.log(`| path | conn/s (median) | rounds | vs node pipe | CPU-s / 1,000 conns (relay process) | failed |`);
  console.log(`|---|---|---|---|---|---|`);
  for (const [i, p] of paths.entries()) {
    const m = median(rates[i]!);
    console.log(`| ${p.name} | ${(m / 1000).toFixed(2)} k | ${rates[i]!.map((x) => (x / 1000).toFixed(2)).join(" ")} | ${ratio(m, pipe)} | ${median(cpu[i]!).toFixed(3)} | ${failures[i]} |`);
  }
  console.log(`Redis store / memory store, median of per-round ratios: ${(median(redisVsMemory) * 100).toFixed(0)}% (rounds: ${redisVsMemory.map((x) => `${(x * 100).toFixed(0)}%`).join(" ")}); target >= 80%`);
}
