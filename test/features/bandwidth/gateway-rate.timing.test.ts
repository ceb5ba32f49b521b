/**
 * Caps of the `[bandwidth]` section measured where the bytes arrive, through
 * a real Gateway built from a configuration: per identity on a connect
 * listener, an override, a reload on a live tunnel, and per IP on a tcp
 * listener (the download direction). Windows start one second after the
 * first byte, when the burst is spent; bursts are small (64 KiB) so that a
 * window sees at most that much extra.
 *
 * The gateway runs in this process: on a loaded machine it is sometimes not
 * scheduled, and a stall longer than a burst's time is rate lost for good
 * (test/helpers/stalls.ts). The lower bounds are the tolerance applied to the
 * time the process could run; the upper bounds are the plain tolerance. A
 * window is extended (up to 4 times its length) until it holds its length
 * of time the process could run, so a loaded machine is measured longer
 * rather than judged on too little data.
 *
 * Every wait is bounded: the gateway's start, reload and stop, each tunnel
 * and meter (5 s), each window (its own bound), and each test as a whole
 * (TEST_MS), so a stall fails with the step that did not finish instead of
 * holding the run.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { configOf, startGateway as startRaw, withTimeout, type Running } from "../../gateway/fixtures.js";
import { rateBounds, StallWatch } from "../../helpers/stalls.js";
import { bandwidthDoc, blast, type Meter, meterDownload, meterOf, now, openTunnel, startUpstream, type Upstream } from "./gateway-harness.js";

const MiB = 1024 * 1024;
/** A test's bound: its windows' bounds (at most 16 s in one test) plus start, tunnels and stop, with room for a loaded machine. */
const TEST_MS = 60_000;
/** Bound of a gateway's start, reload or stop. */
const STEP_MS = 10_000;

async function startGateway(doc: Record<string, unknown>): Promise<Running> {
  const gw = await withTimeout(startRaw(doc), STEP_MS, "the gateway's start");
  return { ...gw, stop: () => withTimeout(gw.stop(), STEP_MS, "the gateway's stop") };
}

describe("gateway bandwidth rates", () => {
  let sink: Upstream;
  let stalls: StallWatch;
  before(async () => {
    sink = await withTimeout(startUpstream({ send: false }), STEP_MS, "the upstream's start");
    stalls = new StallWatch();
  });
  after(async () => {
    stalls.stop();
    await withTimeout(sink.close(), STEP_MS, "the upstream's close");
  });

  /**
   * Asserts `rate` (bytes/s) against `cap` with `tolerance`, given what stalls cost a shaper of burst `burst` in (from, to],
   * replaying its bucket from the arrivals of `meters` (the connections that share it).
   */
  function assertRate(what: string, rate: number, cap: number, burst: number, tolerance: number, from: number, to: number, meters: Meter[]): string {
    const lost = stalls.bucketLostMs(from, to, cap, burst, meters);
    const { low, high } = rateBounds(cap, tolerance, to - from, lost);
    const stallCount = stalls.countIn(from, to);
    const text = `${what} ${(rate / 1024).toFixed(1)} KiB/s (cap ${(cap / 1024).toFixed(0)}, stalls cost ${lost.toFixed(0)} of ${(to - from).toFixed(0)} ms (${stalls.lostMs(from, to, (burst * 1000) / cap).toFixed(0)} if each banked a whole burst), ${stallCount} stalls, longest ${stalls.longestMs(from, to).toFixed(0)} ms)`;
    assert.ok(rate >= low && rate <= high, `${text}: want [${(low / 1024).toFixed(1)}, ${(high / 1024).toFixed(1)}]`);
    return text;
  }

  /** Rates over a window from 1 s after the first byte, holding at least `windowMs` of time the process could run (at most 4 × that in all). */
  async function measureUpload(gw: Running, users: string[], windowMs: number, burstMs: number): Promise<{ rates: number[]; meters: Meter[]; from: number; to: number }> {
    const first = sink.meters.length;
    const socks: net.Socket[] = [];
    for (const u of users) socks.push(await openTunnel(gw.port, sink.port, u));
    const senders = socks.map((s) => blast(s));
    try {
      const meters = await Promise.all(users.map((_, i) => meterOf(sink, first + i)));
      const from = now() + 1000;
      const to = await stalls.windowEnd(from, windowMs, burstMs, 4 * windowMs);
      return { rates: meters.map((m) => (m.between(from, to) * 1000) / (to - from)), meters, from, to };
    } finally {
      for (const b of senders) b.stop();
      for (const s of socks) s.destroy();
    }
  }

  test("a connect listener's per_identity cap holds within 3% after the burst", { timeout: TEST_MS }, async (t) => {
    const gw = await startGateway(await bandwidthDoc({ per_identity: { bytes_per_second: "1MiB", burst: "64KiB" } }));
    try {
      const { rates, meters, from, to } = await measureUpload(gw, ["alice"], 3000, 62.5);
      t.diagnostic(`achieved/configured ${(rates[0]! / MiB).toFixed(4)}`);
      t.diagnostic(assertRate("alice", rates[0]!, MiB, 64 * 1024, 0.03, from, to, [meters[0]!]));
    } finally {
      await gw.stop();
    }
  });

  test("an overridden identity gets its own cap beside the default one", { timeout: TEST_MS }, async (t) => {
    const gw = await startGateway(
      await bandwidthDoc({
        per_identity: { bytes_per_second: 1_048_576, burst: "64KiB" },
        overrides: { bob: { bytes_per_second: "2MiB", burst: "64KiB" } },
      }),
    );
    try {
      const { rates, meters, from, to } = await measureUpload(gw, ["alice", "bob"], 2000, 31.25);
      t.diagnostic(assertRate("alice", rates[0]!, MiB, 64 * 1024, 0.05, from, to, [meters[0]!]));
      t.diagnostic(assertRate("bob", rates[1]!, 2 * MiB, 64 * 1024, 0.05, from, to, [meters[1]!]));
    } finally {
      await gw.stop();
    }
  });

  test("gateway.reload with a new cap changes a live tunnel's rate within 1 s", { timeout: TEST_MS }, async (t) => {
    const doc = await bandwidthDoc({ per_identity: { bytes_per_second: "1MiB", burst: "64KiB" } });
    const gw = await startGateway(doc);
    const first = sink.meters.length;
    const s = await openTunnel(gw.port, sink.port, "carol");
    const sender = blast(s);
    try {
      const m = await meterOf(sink, first);
      const t0 = now();
      // Burst time 62.5 ms both before (64 KiB at 1 MiB/s) and after (16 KiB at 256 KiB/s) the reload.
      await stalls.windowEnd(t0 + 500, 1000, 62.5, 4000);
      await withTimeout(gw.gateway.reload(configOf({ ...doc, bandwidth: { per_identity: { bytes_per_second: "256KiB", burst: "16KiB" } } })), STEP_MS, "gateway.reload");
      const tr = now();
      const end = await stalls.windowEnd(tr + 200, 800, 62.5, 3200);
      const before = (m.between(t0 + 500, tr) * 1000) / (tr - t0 - 500);
      const afterRate = (m.between(tr + 200, end) * 1000) / (end - tr - 200);
      t.diagnostic(assertRate("before the reload", before, MiB, 64 * 1024, 0.05, t0 + 500, tr, [m]));
      t.diagnostic(assertRate(`(0.2 s, ${((end - tr) / 1000).toFixed(1)} s] after the reload`, afterRate, 256 * 1024, 16 * 1024, 0.1, tr + 200, end, [m]));
    } finally {
      sender.stop();
      s.destroy();
      await gw.stop();
    }
  });

  test("a tcp listener's per_ip cap holds per client address, shared by its connections", { timeout: TEST_MS }, async (t) => {
    const source = await withTimeout(startUpstream({ send: true }), STEP_MS, "the source's start");
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
      const from = now() + 1000;
      const to = await stalls.windowEnd(from, 2000, 62.5, 8000);
      const rate = (i: number): number => (meters[i]!.between(from, to) * 1000) / (to - from);
      t.diagnostic(assertRate("127.0.0.2, two connections together", rate(0) + rate(1), 512 * 1024, 32 * 1024, 0.05, from, to, [meters[0]!, meters[1]!]));
      // Shared fairly (round-robin quanta): each gets about half of what the address gets, whatever the machine's speed.
      const pair = rate(0) + rate(1);
      assert.ok(rate(0) > 0.4 * pair && rate(1) > 0.4 * pair, `each of 127.0.0.2's connections gets its share: ${rate(0) / 1024}, ${rate(1) / 1024} KiB/s`);
      t.diagnostic(assertRate("127.0.0.3", rate(2), 512 * 1024, 32 * 1024, 0.05, from, to, [meters[2]!]));
    } finally {
      for (const s of socks) s.destroy();
      await gw.stop();
      await withTimeout(source.close(), STEP_MS, "the source's close");
    }
  });
});
