/**
 * Byte caps across the workers of one `portcullis run` (`workers = 2`, the
 * memory store owned by the primary): one tunnel held in each worker for
 * one identity (CONNECT, per_identity) and for one client address (tcp,
 * per_ip), downloading flat out from an upstream that sends as fast as it
 * can. Each worker draws the key's bytes from one bucket in the primary, in
 * 16 KiB pools, so together they hold the key to its cap; without the
 * shared quota each worker would allow the whole cap and the pair twice it.
 *
 * Windows start one second after the first byte (the burst is spent by
 * then) and last three seconds. Tolerance as for the fleet on Redis: at
 * most 1.04 × the cap (one unspent pool per worker plus the meters' read
 * timing) and at least 0.75 × it over the time this process could run
 * (the workers, the primary, the upstream and the meters share two cores).
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import { userHash, withTimeout } from "../gateway/fixtures.js";
import { Meter, meterDownload, now, openTunnel, PASSWORD, startUpstream, type Upstream } from "../features/bandwidth/gateway-harness.js";
import { StallWatch } from "../helpers/stalls.js";
import { ClusterProcess, TOKEN, freePorts } from "./cluster-process.js";

const KiB = 1024;
const BURST_MS = 62.5;

const started: ClusterProcess[] = [];
let source: Upstream;
let stalls: StallWatch;
before(async () => {
  source = await startUpstream({ send: true });
  stalls = new StallWatch();
});
after(async () => {
  stalls.stop();
  for (const p of started) await p.cleanup();
  await source.close();
});

async function start(lines: string[]): Promise<{ p: ClusterProcess; port: number; admin: number }> {
  const [port, admin] = await freePorts(2);
  const text = [
    "workers = 2",
    'shutdown_timeout = "1s"',
    "[store]",
    // A loaded machine: a primary slow to answer must not look like one that is gone.
    'timeout = "5s"',
    "[log]",
    'format = "json"',
    'level = "warn"',
    "[admin]",
    "enabled = true",
    `bind = "127.0.0.1:${admin}"`,
    `token = "${TOKEN}"`,
    ...lines.map((l) => l.replace("PORT", String(port))),
    "",
  ].join("\n");
  const p = await ClusterProcess.start(text);
  started.push(p);
  return { p, port: port!, admin: admin! };
}

/** Accepted connections per worker slot, from the aggregated /metrics. */
async function perWorker(p: ClusterProcess, admin: number): Promise<Map<string, number>> {
  const text = await p.metrics(admin);
  const m = new Map<string, number>();
  for (const [, w, n] of text.matchAll(/^portcullis_worker_connections_total\{worker="(\d+)"\} (\d+)$/gm)) m.set(w!, Number(n));
  return m;
}

/** Opens connections with `open` until one is held in each worker (read from the per-worker counts); the others are closed. */
async function oneInEachWorker(p: ClusterProcess, admin: number, open: () => Promise<net.Socket>): Promise<net.Socket[]> {
  const kept = new Map<string, net.Socket>();
  for (let i = 0; i < 10 && kept.size < 2; i++) {
    const before = await perWorker(p, admin);
    const s = await open();
    const after = await perWorker(p, admin);
    const w = [...after].find(([slot, n]) => n > (before.get(slot) ?? 0))?.[0];
    if (w === undefined || kept.has(w)) s.destroy();
    else kept.set(w, s);
  }
  assert.equal(kept.size, 2, "one connection held in each worker");
  return [...kept.values()];
}

/** Rates of `meters` over three runnable seconds, from one second after now. */
async function rates(meters: Meter[]): Promise<{ rates: number[]; lostMs: number; span: number }> {
  const from = now() + 1000;
  const to = await stalls.windowEnd(from, 3000, BURST_MS, 6000);
  return { rates: meters.map((m) => (m.between(from, to) * 1000) / (to - from)), lostMs: stalls.lostMs(from, to, BURST_MS), span: to - from };
}

const kib = (r: number): string => (r / KiB).toFixed(1);

describe("workers = 2: byte caps held across the workers through the primary", () => {
  test("one identity capped at 512 KiB/s, one tunnel in each worker: combined within 1.04× the cap", { timeout: 60_000 }, async (t) => {
    const cap = 512 * KiB;
    const { p, port, admin } = await start([
      "[users]",
      `alice = "${await userHash(PASSWORD)}"`,
      "[[policy.rule]]",
      'identities = ["*"]',
      'hosts = ["*"]',
      'ports = ["1-65535"]',
      'cidrs = ["127.0.0.0/8"]',
      "[bandwidth]",
      'per_identity = { bytes_per_second = "512KiB", burst = "32KiB" }',
      "[[listener]]",
      'name = "egress"',
      'kind = "connect"',
      'bind = "127.0.0.1:PORT"',
    ]);
    // Two client addresses: only the identity is shared, not a per-IP bucket.
    let n = 0;
    const socks = await oneInEachWorker(p, admin, () => openTunnel(port, source.port, "alice", `127.0.0.${2 + (n++ % 2)}`));
    try {
      const meters = socks.map(meterDownload);
      const { rates: r, lostMs, span } = await rates(meters);
      const combined = r[0]! + r[1]!;
      t.diagnostic(`alice in two workers: ${r.map(kib).join(" + ")} = ${kib(combined)} KiB/s = ${(combined / cap).toFixed(4)} × cap, window ${span.toFixed(0)} ms, stalled ${lostMs.toFixed(0)} ms`);
      assert.ok(combined <= 1.04 * cap, `combined ${kib(combined)} KiB/s exceeds 1.04 × ${kib(cap)}`);
      assert.ok(combined >= (0.75 * cap * (span - lostMs)) / span, `the cap is used, not starved: ${kib(combined)} KiB/s`);
      for (const x of r) assert.ok(x > 0.2 * combined, `both workers get a share: ${r.map(kib).join(", ")}`);
    } finally {
      for (const s of socks) s.destroy();
    }
  });

  test("one client address with a 512 KiB/s per_ip download cap, one connection in each worker: combined within 1.04× the cap", { timeout: 60_000 }, async (t) => {
    const cap = 512 * KiB;
    const { p, port, admin } = await start([
      "[bandwidth]",
      'per_ip = { download = { bytes_per_second = "512KiB", burst = "32KiB" } }',
      "[[listener]]",
      'name = "front"',
      'kind = "tcp"',
      'bind = "127.0.0.1:PORT"',
      `upstream = "127.0.0.1:${source.port}"`,
    ]);
    const socks = await oneInEachWorker(p, admin, async () => {
      const s = net.connect({ port, host: "127.0.0.1", localAddress: "127.0.0.9" });
      s.on("error", () => {});
      await withTimeout(new Promise((r, j) => (s.once("connect", r), s.once("error", j))), 10_000, "connect");
      // Counted once the gateway has its upstream: wait for the first bytes.
      await withTimeout(new Promise((r) => s.once("data", r)), 10_000, "first bytes");
      s.pause();
      return s;
    });
    try {
      const { rates: r, lostMs, span } = await rates(socks.map(meterDownload));
      const combined = r[0]! + r[1]!;
      t.diagnostic(`127.0.0.9 in two workers: ${r.map(kib).join(" + ")} = ${kib(combined)} KiB/s = ${(combined / cap).toFixed(4)} × cap, window ${span.toFixed(0)} ms, stalled ${lostMs.toFixed(0)} ms`);
      assert.ok(combined <= 1.04 * cap, `combined ${kib(combined)} KiB/s exceeds 1.04 × ${kib(cap)}`);
      assert.ok(combined >= (0.75 * cap * (span - lostMs)) / span, `the cap is used, not starved: ${kib(combined)} KiB/s`);
    } finally {
      for (const s of socks) s.destroy();
    }
  });
});
