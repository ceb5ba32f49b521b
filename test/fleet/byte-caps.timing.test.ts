/**
 * Byte caps held by a fleet: real `portcullis run` gateways on one Redis
 * (`[store] kind = "redis"`), one identity with a 1 MiB/s cap and one
 * CONNECT tunnel through each gateway, sending flat out to one upstream
 * that meters what arrives. The gateways draw the identity's bytes from
 * one leased quota in Redis, so together they hold it to its cap.
 *
 * Windows start one second after the first byte (the 64 KiB burst is spent
 * by then) and last four seconds. Tolerance: the combined rate is at most
 * 1.04 × the cap (what the gateways hold unspent, about one 20 ms lease
 * slice and one 16 KiB pool each, plus the meters' read timing) and at
 * least 0.75 × it over the time this process could run (the gateways share
 * two cores with the test and the meters); between two gateways each gets
 * at least 40% of the combined rate. A per-IP cap is held the same way: one
 * client address downloading through two tcp listeners.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { userHash } from "../gateway/fixtures.js";
import net from "node:net";
import { blast, meterDownload, now, openTunnel, PASSWORD, meterOf, startUpstream, type Upstream } from "../features/bandwidth/gateway-harness.js";
import { StallWatch } from "../helpers/stalls.js";
import { deletePrefix } from "../redis/helpers.js";
import { fleetPrefix, redisStoreToml, startFleet } from "./fleet-processes.js";

const MiB = 1024 * 1024;
const CAP = MiB;
const BURST_MS = 62.5;

async function fleetToml(prefix: string): Promise<string> {
  return [
    "[log]",
    'format = "json"',
    'level = "warn"',
    "[users]",
    `alice = "${await userHash(PASSWORD)}"`,
    "[[policy.rule]]",
    'identities = ["*"]',
    'hosts = ["*"]',
    'ports = ["1-65535"]',
    'cidrs = ["127.0.0.0/8"]',
    "[bandwidth]",
    'per_identity = { bytes_per_second = "1MiB", burst = "64KiB" }',
    redisStoreToml(prefix),
    "[[listener]]",
    'name = "egress"',
    'kind = "connect"',
    'bind = "127.0.0.1:0"',
    "",
  ].join("\n");
}

describe("byte caps across gateways on one Redis", () => {
  let sink: Upstream;
  let stalls: StallWatch;
  const prefixes: string[] = [];
  before(async () => {
    sink = await startUpstream({ send: false });
    stalls = new StallWatch();
  });
  after(async () => {
    stalls.stop();
    await sink.close();
    for (const p of prefixes) await deletePrefix(p);
  });

  /** Rates of one tunnel as alice through each of `n` gateways, over a window of `windowMs` from 1 s after the first byte. */
  async function measure(n: number, windowMs: number): Promise<{ rates: number[]; lostMs: number; span: number }> {
    const prefix = fleetPrefix("bw");
    prefixes.push(prefix);
    const fleet = await startFleet(n, await fleetToml(prefix), "egress");
    const first = sink.meters.length;
    const senders: { stop(): void }[] = [];
    const socks = [];
    try {
      for (let i = 0; i < n; i++) socks.push(await openTunnel(fleet.ports[i]!, sink.port, "alice", `127.0.0.${i + 2}`));
      for (const s of socks) senders.push(blast(s));
      const meters = await Promise.all(socks.map((_, i) => meterOf(sink, first + i)));
      const from = now() + 1000;
      const to = await stalls.windowEnd(from, windowMs, BURST_MS, 2 * windowMs);
      const rates = meters.map((m) => (m.between(from, to) * 1000) / (to - from));
      return { rates, lostMs: stalls.lostMs(from, to, BURST_MS), span: to - from };
    } finally {
      for (const s of senders) s.stop();
      for (const s of socks) s.destroy();
      await fleet.stop();
    }
  }

  const kib = (r: number): string => (r / 1024).toFixed(1);

  test("three gateways, one identity capped at 1 MiB/s, one tunnel through each: combined within 1.04× the cap", { timeout: 60_000 }, async (t) => {
    const { rates, lostMs, span } = await measure(3, 4000);
    const combined = rates.reduce((a, b) => a + b, 0);
    t.diagnostic(`combined ${kib(combined)} KiB/s = ${(combined / CAP).toFixed(4)} × cap (${rates.map(kib).join(" + ")}), window ${span.toFixed(0)} ms, test process stalled ${lostMs.toFixed(0)} ms`);
    assert.ok(combined <= 1.04 * CAP, `combined ${kib(combined)} KiB/s exceeds 1.04 × ${kib(CAP)}`);
    assert.ok(combined >= (0.75 * CAP * (span - lostMs)) / span, `combined ${kib(combined)} KiB/s: the cap is used, not starved`);
    for (const r of rates) assert.ok(r > 0.2 * combined, `every gateway gets a share: ${rates.map(kib).join(", ")}`);
  });

  test("two gateways, one client address with a 512 KiB/s per_ip download cap: combined within 1.04× the cap", { timeout: 60_000 }, async (t) => {
    const prefix = fleetPrefix("bw-ip");
    prefixes.push(prefix);
    const source = await startUpstream({ send: true });
    const text = [
      "[log]",
      'format = "json"',
      'level = "warn"',
      "[bandwidth]",
      'per_ip = { download = { bytes_per_second = "512KiB", burst = "32KiB" } }',
      redisStoreToml(prefix),
      "[[listener]]",
      'name = "front"',
      'kind = "tcp"',
      'bind = "127.0.0.1:0"',
      `upstream = "127.0.0.1:${source.port}"`,
      "",
    ].join("\n");
    const fleet = await startFleet(2, text, "front");
    const socks = fleet.ports.map((port) => net.connect({ port, host: "127.0.0.1", localAddress: "127.0.0.9" }));
    try {
      const meters = socks.map((s) => {
        s.on("error", () => {});
        return meterDownload(s);
      });
      const from = now() + 1000;
      const to = await stalls.windowEnd(from, 3000, BURST_MS, 6000);
      const rates = meters.map((m) => (m.between(from, to) * 1000) / (to - from));
      const combined = rates[0]! + rates[1]!;
      const cap = 512 * 1024;
      t.diagnostic(`127.0.0.9 through two gateways: ${rates.map(kib).join(" + ")} = ${kib(combined)} KiB/s = ${(combined / cap).toFixed(4)} × cap`);
      assert.ok(combined <= 1.04 * cap, `combined ${kib(combined)} KiB/s exceeds 1.04 × ${kib(cap)}`);
      assert.ok(combined >= 0.75 * cap * ((to - from - stalls.lostMs(from, to, BURST_MS)) / (to - from)), `the cap is used: ${kib(combined)} KiB/s`);
    } finally {
      for (const s of socks) s.destroy();
      await fleet.stop();
      await source.close();
    }
  });

  test("two gateways, one identity: each gets at least 40% of the combined rate", { timeout: 60_000 }, async (t) => {
    const { rates, span } = await measure(2, 3000);
    const combined = rates[0]! + rates[1]!;
    const shares = rates.map((r) => r / combined);
    t.diagnostic(`shares ${shares.map((s) => (s * 100).toFixed(1)).join("/")} of ${kib(combined)} KiB/s (${(combined / CAP).toFixed(4)} × cap), window ${span.toFixed(0)} ms`);
    assert.ok(combined <= 1.04 * CAP, `combined ${kib(combined)} KiB/s exceeds 1.04 × the cap`);
    for (const s of shares) assert.ok(s >= 0.4, `fairness no worse than 40/60: ${shares.map((x) => (x * 100).toFixed(1)).join("/")}`);
  });
});
