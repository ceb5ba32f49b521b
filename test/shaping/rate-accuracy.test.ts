/**
 * Rates measured at the receiving end through a real TCP relay built from
 * the shaped stage, on the system clock. Each window starts well after the
 * initial burst and lasts 5 s.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { systemClock } from "../../src/core/clock.js";
import { blast, connectFrom, Meter, sleep, startRelayProcess, startUpstream, until } from "./harness.js";

const MiB = 1024 * 1024;
const KiB = 1024;
const WINDOW = 5000;
const SETTLE = 1000;

describe("shaped relay rates (real sockets)", { timeout: 60_000 }, () => {
  test("one connection capped at 1 MiB/s moves 1 MiB/s ±1.5% each way", async () => {
    const up = await startUpstream({ send: true });
    // Burst 64 KiB: rides out event-loop stalls up to 62 ms without losing rate.
    const relay = await startRelayProcess({ upstreamPort: up.port, identity: "alice", config: { per_identity: { bytes_per_second: MiB, burst: 64 * KiB } } });
    const c = await connectFrom("127.0.0.2", relay.port);
    const down = new Meter();
    c.on("data", (d: Buffer) => down.record(d.length));
    const b = blast(c);
    try {
      await until(() => up.meters.length === 1, 5000, "upstream accept");
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
      await until(() => up.meters.length === 5, 5000, "upstream accepts");
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
      await until(() => up.meters.length === 1, 5000, "accept");
      const plain = await connectFrom("127.0.0.8", relay.port);
      const bp = blast(plain);
      await until(() => up.meters.length === 2, 5000, "accept");
      const t0 = systemClock.now();
      await sleep(2200);
      const vipRate = up.meters[0]!.rate(t0 + 500, t0 + 2000) / MiB;
      const plainRate = up.meters[1]!.rate(t0 + 500, t0 + 2000) / MiB;
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
});
