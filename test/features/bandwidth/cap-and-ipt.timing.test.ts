/**
 * A byte cap and inter-packet timing on one connection, through a real
 * Gateway built from a configuration: a CONNECT tunnel whose identity has a
 * download cap, on a listener with `probe_resistance.ipt` on, gets both.
 * The rate at the client stays at most the cap, and what the gateway writes
 * toward the client is spaced like the IPT writer spaces it: the IPT
 * controller draws (the only thing in the relay path that draws from the
 * gateway's Rng), and the gaps between the reads the client sees fall in the
 * burst range (0.5-10 ms, median about e ms) where the cap alone spaces them
 * differently.
 *
 * The rates and gaps are measured on real sockets on a shared machine: the
 * bytes are only bounded from above, by what a full bucket refilled at the
 * cap lets through since the download started (a stalled gateway is
 * slower, never faster), and the gap checks are on the bulk of the distribution (median
 * and lower quantile), not on single gaps a scheduler stall can stretch.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Gateway } from "../../../src/gateway/gateway.js";
import { IPT_BURST_MAX_MS, IPT_BURST_MIN_MS } from "../../../src/features/probe-resistance/ipt.js";
import { LogSink, configOf, withTimeout } from "../../gateway/fixtures.js";
import { type Running, startHttpMask } from "../probe-resistance/fixtures.js";
import { bandwidthDoc, openTunnel } from "./gateway-harness.js";
import { CountingRng, startBulkSource } from "../../helpers/bulk-source.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const CAP = 512 * KiB;
/**
 * A large burst: its bytes go through as fast as the gate lets them (no
 * pacing of its own), so what spaces them is IPT alone; the rest is paced
 * by the cap (whose 5 ms grant quantum would hide IPT's smaller gaps).
 */
const BURST = 2 * MiB;
/** The burst, then 1 MiB at 512 KiB/s: about 2 s through the cap. */
const PAYLOAD = 3 * MiB;
/** Bytes the client may see before the rate window starts (the burst, and what was in flight). */
const WARMUP = BURST + 128 * KiB;
/** Reads of the burst whose gaps are looked at: the first BURST - 256 KiB bytes (well inside it). */
const BURST_PHASE = BURST - 256 * KiB;
const TEST_MS = 30_000;

interface Download {
  /** When the client asked the source to start (ms): the connection's bucket was full by then. */
  startedAt: number;
  /** Arrival time (ms) and size of each read at the client. */
  reads: Array<{ at: number; n: number }>;
  total: number;
}

/** Starts the source through a tunnel and records every read until the gateway ends the connection. */
async function download(gwPort: number, sourcePort: number): Promise<Download> {
  const s = await openTunnel(gwPort, sourcePort, "alice");
  const reads: Download["reads"] = [];
  let total = 0;
  const startedAt = performance.now();
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      s.on("data", (d: Buffer) => {
        reads.push({ at: performance.now(), n: d.length });
        total += d.length;
      });
      s.once("end", () => resolve());
      s.once("close", () => (total === PAYLOAD ? resolve() : reject(new Error(`closed after ${total} of ${PAYLOAD} bytes`))));
      s.resume();
      s.end("g");
    }),
    20_000,
    "the download",
  ).finally(() => s.destroy());
  return { startedAt, reads, total };
}

/**
 * How far the bytes the client had at any read run ahead of what a bucket of
 * BURST bytes, full when the download started and refilled at CAP, can let
 * through by then (0 or less: never ahead). Load on the machine only makes
 * the gateway slower, so this holds however loaded the machine is.
 */
function aheadOfBucket(d: Download): number {
  let seen = 0;
  let worst = -Infinity;
  for (const r of d.reads) {
    seen += r.n;
    worst = Math.max(worst, seen - BURST - (CAP * (r.at - d.startedAt)) / 1000);
  }
  return worst;
}

/** Bytes per second over the reads after the first WARMUP bytes. */
function rateAfterWarmup(d: Download): number {
  let seen = 0;
  let i = 0;
  while (i < d.reads.length && seen < WARMUP) seen += d.reads[i++]!.n;
  const from = d.reads[i - 1]!.at;
  const last = d.reads[d.reads.length - 1]!.at;
  return ((d.total - seen) * 1000) / (last - from);
}

/** Reads closer than this to the one before are one write the kernel handed over in pieces. */
const SAME_WRITE_MS = 0.25;

/** Gaps (ms, sorted) between the writes (reads grouped by SAME_WRITE_MS) that carry the first BURST_PHASE bytes. */
function burstGapsOf(d: Download): number[] {
  const gaps: number[] = [];
  let seen = d.reads[0]!.n;
  for (let i = 1; i < d.reads.length && seen < BURST_PHASE; i++) {
    const gap = d.reads[i]!.at - d.reads[i - 1]!.at;
    if (gap >= SAME_WRITE_MS) gaps.push(gap);
    seen += d.reads[i]!.n;
  }
  return gaps.sort((a, b) => a - b);
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

describe("a byte cap and IPT on one connection", () => {
  let source: Running;
  let mask: Running;
  before(async () => {
    [source, mask] = await Promise.all([startBulkSource(Buffer.alloc(PAYLOAD, 0x61)), startHttpMask()]);
  });
  after(async () => {
    await source.close();
    await mask.close();
  });

  async function run(ipt: boolean): Promise<{ d: Download; draws: number }> {
    const doc = await bandwidthDoc(
      { per_identity: { download: { bytes_per_second: CAP, burst: BURST }, upload: "unlimited" } },
      {},
    );
    const listener = (doc.listener as Array<Record<string, unknown>>)[0]!;
    listener.probe_resistance = { mask: `127.0.0.1:${mask.port}`, delay: { floor: "0ms", ceiling: "0ms" }, ipt: { enabled: ipt } };
    const rng = new CountingRng(7);
    const gateway = new Gateway(configOf(doc), { rng, logDestination: new LogSink() });
    const bound = await withTimeout(gateway.start(), 10_000, "the gateway's start");
    try {
      const d = await download(bound[0]!.port, source.port);
      return { d, draws: rng.draws };
    } finally {
      await withTimeout(gateway.stop(), 10_000, "the gateway's stop");
    }
  }

  test("the rate stays at most the cap and the writes toward the client are IPT-spaced", { timeout: TEST_MS }, async (t) => {
    const capped = await run(false);
    const both = await run(true);
    for (const r of [capped, both]) assert.equal(r.d.total, PAYLOAD, "every byte arrives");

    const rateCapped = rateAfterWarmup(capped.d);
    const rateBoth = rateAfterWarmup(both.d);
    // At most the cap: never ahead of the bucket by more than one grant (64 KiB, the most a gate gives at once).
    for (const [what, r] of [["cap + IPT", both], ["cap only", capped]] as const) {
      const ahead = aheadOfBucket(r.d);
      assert.ok(ahead <= 64 * KiB, `${what}: ${(ahead / KiB).toFixed(1)} KiB ahead of burst + cap × time`);
    }

    assert.equal(capped.draws, 0, "without IPT nothing in the relay draws a delay");
    assert.ok(both.draws > 0, "with IPT the controller draws its delays");
    const gapsBoth = burstGapsOf(both.d);
    const gapsCapped = burstGapsOf(capped.d);
    assert.ok(gapsBoth.length >= 10, `only ${gapsBoth.length} gaps in the burst`);
    const p10 = quantile(gapsBoth, 0.1);
    const p50 = quantile(gapsBoth, 0.5);
    const text =
      `cap+IPT: ${(rateBoth / KiB).toFixed(1)} KiB/s, burst gaps (${gapsBoth.length}) p10 ${p10.toFixed(2)} p50 ${p50.toFixed(2)} ms; ` +
      `cap only: ${(rateCapped / KiB).toFixed(1)} KiB/s, burst gaps (${gapsCapped.length}) p10 ${quantile(gapsCapped, 0.1).toFixed(2)} p50 ${quantile(gapsCapped, 0.5).toFixed(2)} ms`;
    t.diagnostic(text);
    // IPT spaces each write at least a burst delay after the last: the bulk of the gaps sit in its burst range.
    // (The cap alone lets the burst through back to back: its median gap is well under the IPT minimum.)
    assert.ok(p10 >= IPT_BURST_MIN_MS * 0.8, `${text}: gaps below the IPT minimum`);
    assert.ok(p50 >= 1.5 && p50 <= IPT_BURST_MAX_MS * 2, `${text}: median gap outside the IPT burst range`);
  });
});
