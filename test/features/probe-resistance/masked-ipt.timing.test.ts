/**
 * Inter-packet timing on masked connections, through a real Gateway: a
 * prober on a `connect` listener with `probe_resistance.ipt` on is relayed
 * to the mask host, and the mask host's answer reaches it spaced the way the
 * IPT writer spaces writes (gaps in the burst range, 0.5-10 ms, median about
 * e ms), every byte intact. Without IPT the same answer is not paced and no
 * delay is drawn.
 *
 * Gaps are measured on real sockets on a shared machine: the checks are on
 * the bulk of the distribution (the number of writes and the median gap), not on single
 * gaps a scheduler stall can stretch.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import { Gateway } from "../../../src/gateway/gateway.js";
import { IPT_BURST_MAX_MS } from "../../../src/features/probe-resistance/ipt.js";
import { LogSink, configOf, connectDoc, withTimeout } from "../../gateway/fixtures.js";
import type { Running } from "./fixtures.js";
import { CountingRng, startBulkSource } from "../../helpers/bulk-source.js";

const KiB = 1024;
/** The mask host's answer: enough 64 KiB flushes of the IPT writer for a distribution of gaps. */
const ANSWER = 2048 * KiB;
const TEST_MS = 30_000;
/**
 * Reads closer than this to the one before are one write the kernel handed
 * over in pieces (under load those pieces can arrive a few tenths of a
 * millisecond apart); IPT spaces writes at least 0.5 ms apart.
 */
const SAME_WRITE_MS = 0.4;

const answer = Buffer.alloc(ANSWER);
for (let i = 0; i < ANSWER; i++) answer[i] = (i * 31 + 7) & 0xff;
const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

/** Sends a plain HTTP request (not a CONNECT: it is masked) and records every read until the gateway ends the connection. */
async function probe(port: number): Promise<{ body: Buffer; reads: Array<{ at: number; n: number }> }> {
  const s = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true });
  const reads: Array<{ at: number; n: number }> = [];
  const chunks: Buffer[] = [];
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        s.on("data", (d: Buffer) => {
          reads.push({ at: performance.now(), n: d.length });
          chunks.push(d);
        });
        s.once("end", () => resolve());
        s.once("error", reject);
        s.once("close", () => resolve());
        s.write("GET /big HTTP/1.1\r\nHost: www.example.test\r\n\r\n");
      }),
      20_000,
      "the masked answer",
    );
  } finally {
    s.destroy();
  }
  return { body: Buffer.concat(chunks), reads };
}

/** Gaps (ms, sorted) between the writes (reads grouped by SAME_WRITE_MS) of the answer. */
function gapsOf(reads: Array<{ at: number }>): number[] {
  const gaps: number[] = [];
  for (let i = 1; i < reads.length; i++) {
    const gap = reads[i]!.at - reads[i - 1]!.at;
    if (gap >= SAME_WRITE_MS) gaps.push(gap);
  }
  return gaps.sort((a, b) => a - b);
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;

describe("inter-packet timing on masked connections", () => {
  let mask: Running;
  before(async () => {
    mask = await startBulkSource(answer);
  });
  after(async () => {
    await mask.close();
  });

  async function run(ipt: boolean): Promise<{ body: Buffer; gaps: number[]; draws: number }> {
    const doc = await connectDoc({
      guard: { ban: { failures: 1000, backoff_after: 1000 } },
      listener: { probe_resistance: { mask: `127.0.0.1:${mask.port}`, delay: { floor: "0ms", ceiling: "0ms" }, ipt: { enabled: ipt } } },
    });
    const rng = new CountingRng(3);
    const gateway = new Gateway(configOf(doc), { rng, logDestination: new LogSink() });
    const bound = await withTimeout(gateway.start(), 10_000, "the gateway's start");
    try {
      const r = await probe(bound[0]!.port);
      return { body: r.body, gaps: gapsOf(r.reads), draws: rng.draws };
    } finally {
      await withTimeout(gateway.stop(), 10_000, "the gateway's stop");
    }
  }

  test("the mask host's answer reaches the prober IPT-spaced, byte for byte", { timeout: TEST_MS }, async (t) => {
    const plain = await run(false);
    const paced = await run(true);
    for (const r of [plain, paced]) assert.equal(sha256(r.body), sha256(answer), "the mask host's answer arrives intact");
    assert.equal(plain.draws, 0, "without IPT nothing in the mask relay draws a delay");
    assert.ok(paced.draws > 0, "with IPT the controller draws its delays");

    const g = paced.gaps;
    const text =
      `IPT: ${g.length} gaps, p25 ${quantile(g, 0.25).toFixed(2)} p50 ${quantile(g, 0.5).toFixed(2)} ms; ` +
      `plain: ${plain.gaps.length} gaps, p25 ${quantile(plain.gaps, 0.25).toFixed(2)} p50 ${quantile(plain.gaps, 0.5).toFixed(2)} ms`;
    t.diagnostic(text);
    // The writer holds about 64 KiB (and its buffer as much again) between writes: 2 MiB takes at least 16 paced
    // writes, where the unpaced relay hands the answer over in a few bursts.
    assert.ok(g.length >= 12, `${text}: too few paced writes`);
    // Each write waits a burst delay after the last: the median gap sits in IPT's burst range (about e ms).
    // (No check on the lowest gaps: a write the kernel splits and a stall separates shows as a short gap.)
    const p50 = quantile(g, 0.5);
    assert.ok(p50 >= 1.5 && p50 <= IPT_BURST_MAX_MS * 2, `${text}: median gap outside the IPT burst range`);
  });
});
