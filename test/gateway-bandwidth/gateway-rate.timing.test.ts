/**
 * Caps of the `[bandwidth]` section measured where the bytes arrive, through
 * a real Gateway built from a configuration: per identity on a connect
 * listener, an override, a reload on a live tunnel, and per IP on a tcp
 * listener (the download direction). Windows start one second after the
 * first byte, when the burst is spent; bursts are small (64 KiB) so that a
 * window sees at most that much extra.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { configOf, startGateway, type Running } from "../gateway/fixtures.js";
import { bandwidthDoc, blast, meterDownload, meterOf, now, openTunnel, sleep, startUpstream, type Upstream } from "./harness.js";

const MiB = 1024 * 1024;

describe("gateway bandwidth rates", () => {
  let sink: Upstream;
  before(async () => {
    sink = await startUpstream({ send: false });
  });
  after(async () => {
    await sink.close();
  });

  async function measureUpload(gw: Running, users: string[], windowMs: number): Promise<number[]> {
    const first = sink.meters.length;
    const socks: net.Socket[] = [];
    for (const u of users) socks.push(await openTunnel(gw.port, sink.port, u));
    const senders = socks.map((s) => blast(s));
    try {
      const meters = await Promise.all(users.map((_, i) => meterOf(sink, first + i)));
      const t0 = now();
      await sleep(1000 + windowMs + 100);
      return meters.map((m) => (m.between(t0 + 1000, t0 + 1000 + windowMs) * 1000) / windowMs);
    } finally {
      for (const b of senders) b.stop();
      for (const s of socks) s.destroy();
    }
  }

  test("a connect listener's per_identity cap holds within 3% after the burst", async (t) => {
    const gw = await startGateway(await bandwidthDoc({ per_identity: { bytes_per_second: "1MiB", burst: "64KiB" } }));
    try {
      const [rate] = await measureUpload(gw, ["alice"], 3000);
      const ratio = rate! / MiB;
      t.diagnostic(`achieved/configured ${ratio.toFixed(4)}`);
      assert.ok(Math.abs(ratio - 1) <= 0.03, `achieved/configured = ${ratio.toFixed(4)}`);
    } finally {
      await gw.stop();
    }
  });

  test("an overridden identity gets its own cap beside the default one", async (t) => {
    const gw = await startGateway(
      await bandwidthDoc({
        per_identity: { bytes_per_second: 1_048_576, burst: "64KiB" },
        overrides: { bob: { bytes_per_second: "2MiB", burst: "64KiB" } },
      }),
    );
    try {
      const [alice, bob] = await measureUpload(gw, ["alice", "bob"], 2000);
      t.diagnostic(`alice ${(alice! / MiB).toFixed(4)} MiB/s (cap 1), bob ${(bob! / MiB).toFixed(4)} MiB/s (cap 2)`);
      assert.ok(Math.abs(alice! / MiB - 1) <= 0.05, `alice ${(alice! / MiB).toFixed(4)} MiB/s`);
      assert.ok(Math.abs(bob! / (2 * MiB) - 1) <= 0.05, `bob ${(bob! / MiB).toFixed(4)} MiB/s`);
    } finally {
      await gw.stop();
    }
  });

  test("gateway.reload with a new cap changes a live tunnel's rate within 1 s", async (t) => {
    const doc = await bandwidthDoc({ per_identity: { bytes_per_second: "1MiB", burst: "64KiB" } });
    const gw = await startGateway(doc);
    const first = sink.meters.length;
    const s = await openTunnel(gw.port, sink.port, "carol");
    const sender = blast(s);
    try {
      const m = await meterOf(sink, first);
      const t0 = now();
      await sleep(1500);
      await gw.gateway.reload(configOf({ ...doc, bandwidth: { per_identity: { bytes_per_second: "256KiB", burst: "16KiB" } } }));
      const tr = now();
      await sleep(1100);
      const before = (m.between(t0 + 500, tr) * 1000) / (tr - t0 - 500);
      const afterRate = (m.between(tr + 200, tr + 1000) * 1000) / 800;
      t.diagnostic(`before ${(before / MiB).toFixed(4)} MiB/s (cap 1), (0.2 s, 1 s] after ${(afterRate / 1024).toFixed(1)} KiB/s (cap 256)`);
      assert.ok(Math.abs(before / MiB - 1) <= 0.05, `before reload ${(before / MiB).toFixed(4)} MiB/s`);
      assert.ok(Math.abs(afterRate / (256 * 1024) - 1) <= 0.1, `after reload ${(afterRate / 1024).toFixed(1)} KiB/s`);
    } finally {
      sender.stop();
      s.destroy();
      await gw.stop();
    }
  });

  test("a tcp listener's per_ip cap holds per client address, shared by its connections", async (t) => {
    const source = await startUpstream({ send: true });
    const gw = await startGateway({
      log: { format: "json", level: "warn" },
      listener: [{ name: "front", kind: "tcp", bind: "127.0.0.1:0", upstream: `127.0.0.1:${source.port}` }],
      bandwidth: { per_ip: { download: { bytes_per_second: "512KiB", burst: "32KiB" } } },
    });
    const socks = [
      net.connect({ port: gw.port, host: "127.0.0.1", localAddress: "127.0.0.2" }),
      net.connect({ port: gw.port, host: "127.0.0.1", localAddress: "127.0.0.2" }),
      net.connect({ port: gw.port, host: "127.0.0.1", localAddress: "127.0.0.3" }),
    ];
    try {
      const meters = socks.map((s) => {
        s.on("error", () => {});
        return meterDownload(s);
      });
      const t0 = now();
      await sleep(3100);
      const rate = (i: number): number => meters[i]!.between(t0 + 1000, t0 + 3000) / 2 / 1024;
      const shared = rate(0) + rate(1);
      t.diagnostic(`127.0.0.2: ${rate(0).toFixed(1)} + ${rate(1).toFixed(1)} KiB/s, 127.0.0.3: ${rate(2).toFixed(1)} KiB/s (cap 512 each)`);
      assert.ok(Math.abs(shared / 512 - 1) <= 0.05, `127.0.0.2 together ${shared.toFixed(1)} KiB/s`);
      assert.ok(rate(0) > 128 && rate(1) > 128, `each of 127.0.0.2's connections moves: ${rate(0).toFixed(1)}, ${rate(1).toFixed(1)} KiB/s`);
      assert.ok(Math.abs(rate(2) / 512 - 1) <= 0.05, `127.0.0.3 ${rate(2).toFixed(1)} KiB/s`);
    } finally {
      for (const s of socks) s.destroy();
      await gw.stop();
      await source.close();
    }
  });
});
