/**
 * Interleaved before/after of the gateway's relay path: one gateway process
 * (workers = 1, the `tcp` listener with the guard on) from each of two
 * checkouts (OLD_TREE, default /tmp/pc-old, e.g. `git worktree add --detach
 * /tmp/pc-old <commit>` with node_modules; NEW_TREE, default this one),
 * alternating per round: iperf3 one stream and new connections per second
 * (as `npm run bench -- gateway`), with the relay process's CPU per GB and
 * per 1,000 connections, which a loaded machine disturbs less than the rates.
 *   ROUNDS=8 SECS=3 OLD_TREE=/tmp/pc-old node --import tsx bench/gateway/ab-relay.ts
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connRate, cpuSeconds, echoServer, exec, freePort, median, portcullis, waitListening } from "./relays.js";

const trees = { old: process.env.OLD_TREE ?? "/tmp/pc-old", new: process.env.NEW_TREE ?? new URL("../..", import.meta.url).pathname };
const ROUNDS = Number(process.env.ROUNDS ?? 8);
const SECONDS = Number(process.env.SECS ?? 3);
type Side = "old" | "new";

async function iperf(port: number): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    try {
      const out = await exec("iperf3", ["-c", "127.0.0.1", "-p", String(port), "-t", String(SECONDS), "-P", "1", "-J"], (SECONDS + 20) * 1000);
      return (JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
    } catch (e) {
      // iperf3's server takes one test at a time and may still be closing the last one.
      if (attempt >= 2) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "portcullis-ab-relay-"));
  const iperfPort = await freePort();
  const iperfServer = spawn("iperf3", ["-s", "-p", String(iperfPort)], { stdio: "ignore" });
  await waitListening(iperfPort);
  const echo = await echoServer();
  const gws = {
    old: { bulk: await portcullis(iperfPort, dir, trees.old, "old"), conns: await portcullis(echo.port, dir, trees.old, "old") },
    new: { bulk: await portcullis(iperfPort, dir, trees.new, "new"), conns: await portcullis(echo.port, dir, trees.new, "new") },
  };
  const res = { old: { gbit: [] as number[], cps: [] as number[], cpuGB: [] as number[], cpuK: [] as number[] }, new: { gbit: [] as number[], cps: [] as number[], cpuGB: [] as number[], cpuK: [] as number[] } };
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const order: Side[] = r % 2 === 0 ? ["old", "new"] : ["new", "old"];
      for (const k of order) {
        const t0 = cpuSeconds(gws[k].bulk.pid);
        const gbit = await iperf(gws[k].bulk.port);
        const t1 = cpuSeconds(gws[k].bulk.pid);
        const c0 = cpuSeconds(gws[k].conns.pid);
        const c = await connRate(gws[k].conns.port, SECONDS);
        const c1 = cpuSeconds(gws[k].conns.pid);
        res[k].gbit.push(gbit);
        res[k].cps.push(c.perSec);
        res[k].cpuGB.push((t1 - t0) / ((gbit * SECONDS) / 8));
        res[k].cpuK.push(((c1 - c0) / (c.perSec * SECONDS)) * 1000);
        console.error(`round ${r} ${k}: ${gbit.toFixed(2)} Gbit/s, ${(c.perSec / 1000).toFixed(2)} k conn/s, failed ${c.failed}`);
      }
    }
  } finally {
    for (const g of Object.values(gws)) {
      g.bulk.stop();
      g.conns.stop();
    }
    iperfServer.kill("SIGKILL");
    echo.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const m = (xs: number[]): number => median(xs);
  console.log(`| median of ${ROUNDS} interleaved rounds, ${SECONDS} s each | old | new | new / old |`);
  console.log("|---|---|---|---|");
  const row = (name: string, o: number, n: number, f: (x: number) => string): void => console.log(`| ${name} | ${f(o)} | ${f(n)} | ${(n / o).toFixed(3)} |`);
  row("1 stream (iperf3)", m(res.old.gbit), m(res.new.gbit), (x) => `${x.toFixed(2)} Gbit/s`);
  row("new connections/s (100 concurrent)", m(res.old.cps), m(res.new.cps), (x) => `${(x / 1000).toFixed(2)} k`);
  row("relay CPU-s per GB", m(res.old.cpuGB), m(res.new.cpuGB), (x) => x.toFixed(3));
  row("relay CPU-s per 1,000 connections", m(res.old.cpuK), m(res.new.cpuK), (x) => x.toFixed(3));
}

await main();
