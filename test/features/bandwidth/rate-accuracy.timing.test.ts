/**
 * Rates, memory and sharing measured through real TCP relays built from the
 * shaped stage, on the system clock, at the receiving end. These tests load
 * the machine, so they live in one file and run one after another: one
 * test's load must not be another's measurement noise. Rate windows start
 * well after the initial burst and last 5 s.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { systemClock } from "../../../src/core/clock.js";
import { blast, connectFrom, Meter, startRelayProcess, startUpstream } from "./harness.js";
import { waitUntil, sleep } from "../../helpers/wait.js";

const MiB = 1024 * 1024;
const KiB = 1024;
const WINDOW = 5000;
const SETTLE = 1000;
const CONNS = 2000;

function ask<T>(child: ChildProcess, msg: string, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${key} from relay`)), 10_000);
    const on = (m: Record<string, unknown>): void => {
      if (key in m) {
        clearTimeout(t);
        child.off("message", on);
        resolve(m[key] as T);
      }
    };
    child.on("message", on);
    child.send(msg);
  });
}

describe("shaped relays under load (real sockets)", { timeout: 180_000 }, () => {
  test("one connection capped at 1 MiB/s moves 1 MiB/s ±1.5% each way", async () => {
    const up = await startUpstream({ send: true });
    // Burst 128 KiB: the relay rides out scheduling stalls up to 125 ms without losing rate; a
    // window can see at most one burst extra, and only if a stall ends right at its start.
    const relay = await startRelayProcess({ upstreamPort: up.port, identity: "alice", config: { per_identity: { bytes_per_second: MiB, burst: 128 * KiB } } });
    const c = await connectFrom("127.0.0.2", relay.port);
    const down = new Meter();
    c.on("data", (d: Buffer) => down.record(d.length));
    const b = blast(c);
    try {
      await waitUntil(() => up.meters.length === 1, { timeoutMs: 5000, intervalMs: 10, message: "upstream accept" });
      const t0 = systemClock.now();
      await sleep(SETTLE + WINDOW + 200);
      const upRate = up.meters[0]!.rate(t0 + SETTLE, t0 + SETTLE + WINDOW) / MiB;
      const downRate = down.rate(t0 + SETTLE, t0 + SETTLE + WINDOW) / MiB;
      console.log(`# 1 MiB/s cap: upload ${upRate.toFixed(4)}, download ${downRate.toFixed(4)} (achieved/configured)`);
      assert.ok(Math.abs(upRate - 1) <= 0.015, `upload ${upRate}`);
      assert.ok(Math.abs(downRate - 1) <= 0.015, `download ${downRate}`);
      const m = await relay.ask<{ upload: { bytesDelayed: number; throttledMs: number } }>("metrics", "metrics");
      assert.ok(m.upload.bytesDelayed > 0 && m.upload.throttledMs > 0, "the shaper reports throttling");
    } finally {
      b.stop();
      relay.stop();
      await up.close();
    }
  });

  test("four connections of one identity share its cap fairly while another identity gets its full cap", async () => {
    const up = await startUpstream({ send: false });
    const relay = await startRelayProcess({
      upstreamPort: up.port,
      identity: "alice",
      identities: { "127.0.0.6": "bob" },
      config: { per_identity: { bytes_per_second: MiB, burst: 64 * KiB } },
    });
    const clients = await Promise.all(["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"].map((ip) => connectFrom(ip, relay.port)));
    const blasts = clients.map((c) => blast(c));
    try {
      await waitUntil(() => up.meters.length === 5, { timeoutMs: 5000, intervalMs: 10, message: "upstream accepts" });
      const t0 = systemClock.now();
      await sleep(SETTLE + WINDOW + 200);
      const from = t0 + SETTLE;
      const to = from + WINDOW;
      assert.equal(up.meters.length, 5);
      const bytes = up.meters.map((m) => m.between(from, to));
      // bob is the one connection whose bytes alone approach the full cap.
      const bobIdx = bytes.indexOf(Math.max(...bytes));
      const aliceBytes = bytes.filter((_, i) => i !== bobIdx);
      const aliceRate = aliceBytes.reduce((a, x) => a + x, 0) / (WINDOW / 1000) / MiB;
      const bobRate = bytes[bobIdx]! / (WINDOW / 1000) / MiB;
      const shares = aliceBytes.map((x) => x / aliceBytes.reduce((a, y) => a + y, 0));
      console.log(`# alice x4 ${aliceRate.toFixed(4)} of cap, shares ${shares.map((s) => s.toFixed(3)).join(" ")}; bob ${bobRate.toFixed(4)}`);
      assert.ok(Math.abs(aliceRate - 1) <= 0.02, `alice together ${aliceRate}`);
      for (const s of shares) assert.ok(s >= 0.2 && s <= 0.3, `share ${s}`);
      assert.ok(Math.abs(bobRate - 1) <= 0.02, `bob alone ${bobRate}`);
    } finally {
      for (const b of blasts) b.stop();
      relay.stop();
      await up.close();
    }
  });

  test("an override gives its identity its own cap, and a reload changes a live connection's rate within 1 s", async () => {
    const up = await startUpstream({ send: false });
    const base = { per_identity: { bytes_per_second: MiB, burst: 64 * KiB } };
    const relay = await startRelayProcess({
      upstreamPort: up.port,
      identity: "plain",
      identities: { "127.0.0.7": "vip" },
      config: { ...base, overrides: { vip: { bytes_per_second: 2 * MiB, burst: 64 * KiB } } },
    });
    const vip = await connectFrom("127.0.0.7", relay.port);
    const bv = blast(vip);
    try {
      await waitUntil(() => up.meters.length === 1, { timeoutMs: 5000, intervalMs: 10, message: "accept" });
      const plain = await connectFrom("127.0.0.8", relay.port);
      const bp = blast(plain);
      await waitUntil(() => up.meters.length === 2, { timeoutMs: 5000, intervalMs: 10, message: "accept" });
      const t0 = systemClock.now();
      await sleep(3200);
      const vipRate = up.meters[0]!.rate(t0 + 500, t0 + 3000) / MiB;
      const plainRate = up.meters[1]!.rate(t0 + 500, t0 + 3000) / MiB;
      bp.stop();
      plain.destroy();
      assert.ok(Math.abs(vipRate - 2) <= 0.1, `vip ${vipRate} MiB/s`);
      assert.ok(Math.abs(plainRate - 1) <= 0.05, `plain ${plainRate} MiB/s`);
      // Reload: the vip override drops to 512 KiB/s.
      const tr = systemClock.now();
      await relay.ask({ update: { ...base, overrides: { vip: { bytes_per_second: 512 * KiB, burst: 64 * KiB } } } }, "updated");
      await sleep(1100);
      const after = up.meters[0]!.rate(tr + 200, tr + 1000) / MiB;
      console.log(`# override: vip ${vipRate.toFixed(3)} MiB/s, plain ${plainRate.toFixed(3)} MiB/s; after reload vip ${after.toFixed(3)} MiB/s in (0.2 s, 1 s]`);
      assert.ok(Math.abs(after - 0.5) <= 0.05, `after reload ${after} MiB/s`);
    } finally {
      bv.stop();
      relay.stop();
      await up.close();
    }
  });

  test("two gateways on one Redis hold one identity's cap together", { timeout: 60_000 }, async () => {
    const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
    const prefix = `pc-test-${randomBytes(4).toString("hex")}:`;
    const cap = MiB;
    const sliceMs = 100;
    const up = await startUpstream({ send: false });
    const children: ChildProcess[] = [];
    const blasts: { stop(): void }[] = [];
    try {
      const ports: number[] = [];
      for (let i = 0; i < 2; i++) {
        const child = fork(fileURLToPath(new URL("./relay-process.ts", import.meta.url)), [
          JSON.stringify({
            upstreamPort: up.port,
            identity: "alice",
            config: { per_identity: { bytes_per_second: cap, burst: 128 * KiB } },
            redis: { url, prefix, sliceMs },
          }),
        ], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
        children.push(child);
        const [hello] = (await once(child, "message")) as [{ port: number }];
        ports.push(hello.port);
      }
      const a = await connectFrom("127.0.0.2", ports[0]!);
      const b = await connectFrom("127.0.0.3", ports[1]!);
      blasts.push(blast(a), blast(b));
      await waitUntil(() => up.meters.length === 2, { timeoutMs: 10_000, intervalMs: 10, message: "both upstream connections" });
      const t0 = systemClock.now();
      await sleep(6200);
      const from = t0 + 1000;
      const to = from + 5000;
      const each = up.meters.map((m) => m.between(from, to));
      const combined = each[0]! + each[1]!;
      const slice = (cap * sliceMs) / 1000;
      const limit = cap * 5 + 2 * slice;
      console.log(`# two gateways: ${each.map((x) => (x / 5 / MiB).toFixed(3)).join(" + ")} = ${(combined / 5 / MiB).toFixed(3)} MiB/s for a cap of 1 MiB/s (limit with one slice each: ${(limit / 5 / MiB).toFixed(3)})`);
      assert.ok(combined <= limit, `combined ${combined} bytes in 5 s > ${limit}`);
      assert.ok(combined >= cap * 5 * 0.9, `the shared cap is used, not starved: ${combined}`);
      assert.ok(Math.min(...each) > cap * 5 * 0.2, `both gateways get a share: ${each.join(", ")}`);
    } finally {
      for (const b of blasts) b.stop();
      for (const c of children) c.disconnect();
      await up.close();
    }
  });

  test(`${CONNS} throttled connections sending flat out keep the relay's RSS bounded`, { timeout: 120_000 }, async () => {
    const up = await startUpstream({ send: false });
    const child = fork(fileURLToPath(new URL("./relay-process.ts", import.meta.url)), [
      JSON.stringify({ upstreamPort: up.port, config: { per_ip: { bytes_per_second: "64KiB", burst: "16KiB" } } }),
    ], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const clients: net.Socket[] = [];
    const blasts: { stop(): void }[] = [];
    try {
      const [hello] = (await once(child, "message")) as [{ port: number }];
      await sleep(300);
      const base = await ask<number>(child, "rss", "rss");
      const t0 = systemClock.now();
      // Clients from 100 addresses (127.0.1.1 .. 127.0.1.100), 20 connections each, opened in batches.
      for (let i = 0; i < CONNS; i += 250) {
        const batch = Array.from({ length: 250 }, (_, k) => {
          const s = net.connect({ port: hello.port, host: "127.0.0.1", localAddress: `127.0.1.${((i + k) % 100) + 1}` });
          s.on("error", () => {});
          clients.push(s);
          return once(s, "connect");
        });
        await Promise.all(batch);
      }
      for (const c of clients) blasts.push(blast(c));
      const t1 = systemClock.now();
      await waitUntil(() => up.meters.length === CONNS, { timeoutMs: 30_000, intervalMs: 10, message: "all upstream connections" });
      const t2 = systemClock.now();
      let peak = 0;
      for (let i = 0; i < 6; i++) {
        await sleep(500);
        peak = Math.max(peak, await ask<number>(child, "rss", "rss"));
      }
      const metrics = await ask<{ upload: { bytesRelayed: number; bytesDelayed: number } }>(child, "metrics", "metrics");
      const growth = peak - base;
      const elapsed = (systemClock.now() - t0) / 1000;
      console.log(`# connect ${((t1 - t0) / 1000).toFixed(1)} s, upstream accepts ${((t2 - t1) / 1000).toFixed(1)} s, total ${elapsed.toFixed(1)} s`);
      console.log(`# relay RSS ${(base / MiB).toFixed(1)} MiB idle -> peak ${(peak / MiB).toFixed(1)} MiB with ${CONNS} connections: +${(growth / MiB).toFixed(1)} MiB (${(growth / CONNS / 1024).toFixed(1)} KiB per connection); relayed ${(metrics.upload.bytesRelayed / MiB).toFixed(1)} MiB`);
      assert.ok(metrics.upload.bytesDelayed > 0, "connections were throttled");
      // Per connection: two sockets and their JS objects, the source's buffer (high-water mark + one 64 KiB read) and one grant in flight.
      assert.ok(growth / CONNS < 160 * 1024, `RSS growth ${growth} bytes for ${CONNS} connections`);
      // The caps held: 100 addresses at 64 KiB/s each, plus one burst each.
      const cap = 100 * (64 * 1024 * elapsed + 16 * 1024);
      assert.ok(metrics.upload.bytesRelayed <= cap, `relayed ${metrics.upload.bytesRelayed} > ${cap}`);
    } finally {
      for (const b of blasts) b.stop();
      for (const c of clients) c.destroy();
      child.disconnect();
      await up.close();
    }
  });
});
