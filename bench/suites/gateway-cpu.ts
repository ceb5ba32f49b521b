/**
 * CPU time per new connection: the Portcullis `tcp` listener (guard on)
 * against a plain Node `socket.pipe` relay and HAProxy, each relaying a
 * fixed number of connections (connect, 1-byte echo, close) to the same
 * echo server. The figure is the relay process's own CPU time (user +
 * system, all threads, from /proc/<pid>/stat) per 1,000 connections, not
 * wall time, so it holds when the machine is busy: a loaded machine slows
 * every relay down but changes little of what each spends per connection.
 * BENCH_GATEWAY_COMPARE=<checkout> adds that checkout's gateway as one more
 * row, interleaved with the others (before/after on one noisy machine).
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Relay, connections, cpuSeconds, echoServer, haproxy, median, nodePipe, portcullis } from "../gateway/relays.js";

export const title = "Gateway CPU per connection: tcp listener (guard on) vs a plain Node pipe relay and HAProxy";

/** Connections per measured run, and how many run at once. */
const COUNT = Number(process.env.BENCH_CONNS ?? 10_000);
const CONCURRENCY = 50;
/** Rounds over all relays, interleaved; each figure is the median of its rounds. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** Connections before the first measurement, so each relay's code is compiled and its pools are warm. */
const WARMUP = 3_000;
const COMPARE = process.env.BENCH_GATEWAY_COMPARE;

/** CPU seconds `relay` spends on `count` connections through it, per 1,000. */
async function cpuPerThousand(relay: Relay, count: number): Promise<number> {
  const before = cpuSeconds(relay.pid);
  const r = await connections(relay.port, count, CONCURRENCY, 120_000);
  // Let the last closes be processed before reading the clock.
  await new Promise((res) => setTimeout(res, 100));
  const used = cpuSeconds(relay.pid) - before;
  if (r.failed > 0 || r.done !== count) throw new Error(`${relay.name}: ${r.done} of ${count} connections completed, ${r.failed} failed`);
  return (used / count) * 1000;
}

export async function run(): Promise<void> {
  const withHaproxy = spawnSync("sh", ["-c", "command -v haproxy"]).status === 0;
  const dir = await mkdtemp(join(tmpdir(), "portcullis-bench-"));
  const stops: Array<() => void> = [];
  try {
    const echo = await echoServer();
    stops.push(echo.stop);
    const relays: Relay[] = [];
    const makers = [() => nodePipe(echo.port), () => portcullis(echo.port, dir), ...(withHaproxy ? [() => haproxy(echo.port, dir)] : [])];
    if (COMPARE !== undefined) makers.push(() => portcullis(echo.port, dir, COMPARE, `portcullis tcp (guard on), ${COMPARE}`));
    for (const make of makers) {
      const r = await make();
      stops.push(r.stop);
      relays.push(r);
    }
    for (const r of relays) await connections(r.port, WARMUP, CONCURRENCY, 120_000);
    const cpu = relays.map(() => [] as number[]);
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, r] of relays.entries()) cpu[i]!.push(await cpuPerThousand(r, COUNT));
    }
    console.log(`CPU seconds of the relay process per 1,000 connections (connect, 1-byte echo, close; ${COUNT} per run, ${CONCURRENCY} at a time), median of ${ROUNDS} interleaved rounds${withHaproxy ? "" : " (haproxy not installed: left out)"}`);
    const pipe = median(cpu[0]!);
    // Each round's ratio pairs runs made seconds apart, so load that drifts between rounds cancels out.
    const paired = (i: number): number => median(cpu[i]!.map((x, round) => x / cpu[0]![round]!));
    console.log(`| path | CPU-s / 1,000 conns | rounds | vs node pipe | vs node pipe, same round |`);
    console.log(`|---|---|---|---|---|`);
    for (const [i, r] of relays.entries()) {
      const m = median(cpu[i]!);
      console.log(`| ${r.name} | ${m.toFixed(4)} | ${cpu[i]!.map((x) => x.toFixed(4)).join(" / ")} | ${(m / pipe).toFixed(2)}x | ${paired(i).toFixed(2)}x |`);
    }
    console.log(`gateway (guard on) / node pipe: ${(median(cpu[1]!) / pipe).toFixed(2)}x CPU per connection (median of rounds; ${paired(1).toFixed(2)}x as the median of each round's ratio; target ≤ 1.10x)`);
  } finally {
    for (const s of stops) s();
    await rm(dir, { recursive: true, force: true });
  }
}
