import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Outcome } from "../../src/algorithms/outcome.js";
import { decodeReply, deriveParams, settle } from "../../src/stores/redis/rate-batcher.js";
import { scriptSpec } from "../../src/stores/redis/limit-script-spec.js";
import { limitSpec } from "../../src/algorithms/limit-spec.js";

/** A reply as the rate script packs it: little-endian doubles, four per operation (two for code 4). */
function reply(...ops: number[][]): Buffer {
  const b = Buffer.alloc(ops.flat().length * 8);
  ops.flat().forEach((x, k) => b.writeDoubleLE(x, k * 8));
  return b;
}

const none = () => undefined;

describe("rate script replies", () => {
  test("allowed and rejected operations decode exactly, reasons by code", () => {
    const [a, r, c] = decodeReply(reply([1, 7, 0.1 + 0.2, 0], [2, 0, 1234.5, 99], [3, 2, -0, 0]), none);
    assert.deepEqual([a!.allowed, a!.remaining, a!.resetMs], [true, 7, 0.1 + 0.2]);
    assert.deepEqual([r!.allowed, r!.reason, r!.remaining, r!.resetMs, r!.retryAfterMs], [false, "rate_limited", 0, 1234.5, 99]);
    assert.deepEqual([c!.allowed, c!.reason, c!.remaining], [false, "insufficient_capacity", 2]);
    assert.ok(Object.is(c!.resetMs, -0), "a double's sign survives");
  });

  test("a reply that is not the script's (text, an error, a truncated record) decodes to nothing it did not carry", () => {
    assert.deepEqual(decodeReply("1 7 0.5", none), []);
    assert.deepEqual(decodeReply(undefined, none), []);
    assert.deepEqual(decodeReply(new Error("BUSY"), none), []);
    const cut = reply([1, 1, 1, 0], [1, 2, 2, 0]).subarray(0, 50);
    assert.equal(decodeReply(cut, none).length, 1);
    // An unknown code, or a code 4 record for an operation that is not GCRA, stops decoding there.
    assert.equal(decodeReply(reply([1, 1, 1, 0], [9, 0, 0, 0], [1, 2, 2, 0]), none).length, 1);
    assert.equal(decodeReply(reply([4, 10], [1, 2, 2, 0]), none).length, 0);
  });

  test("settle answers every waiter: undecided operations get undefined (the failure mode answers them)", () => {
    const got: (Outcome | undefined)[] = [];
    settle([(o) => got.push(o), (o) => got.push(o), (o) => got.push(o)], reply([1, 4, 10, 0]), none);
    assert.equal(got.length, 3);
    assert.equal(got[0]?.remaining, 4);
    assert.deepEqual(got.slice(1), [undefined, undefined]);
  });

  test("a reply inside a larger buffer (as a socket read hands it over) decodes from its own offset", () => {
    const big = Buffer.concat([Buffer.from("xyz"), reply([1, 5, 6, 0])]);
    const [o] = decodeReply(big.subarray(3), none);
    assert.equal(o!.remaining, 5);
    assert.equal(o!.resetMs, 6);
  });

  test("code 4 (an allowed GCRA check of cost 1) derives remaining from the debt exactly as the memory store does", () => {
    for (const opts of [
      { rate: 10, periodMs: 1000, burst: 5 },
      { rate: 1e9, periodMs: 1000, burst: 1e9 },
      { rate: 3, periodMs: 7000, burst: 2.5 },
    ]) {
      const spec = limitSpec({ algorithm: "gcra", ...opts });
      assert.ok(spec.kind === "gcra");
      const p = spec.params;
      const derive = deriveParams(scriptSpec(spec, 1000));
      assert.ok(derive !== undefined);
      assert.equal(derive.ceilingMs, p.ceilingMs, "the same ceiling, to the bit");
      for (const debt of [0, p.intervalMs, p.toleranceMs / 3, p.toleranceMs - p.intervalMs / 2, p.toleranceMs, p.ceilingMs]) {
        const [o] = decodeReply(reply([4, debt]), () => derive);
        const want = Math.floor((p.ceilingMs - debt) / p.intervalMs);
        assert.equal(o!.allowed, true);
        assert.equal(o!.remaining, want < 0 ? 0 : want > p.burst ? Math.floor(p.burst) : want, `debt ${debt}`);
        assert.equal(o!.resetMs, debt);
      }
    }
    assert.equal(deriveParams("f 5 1000 1000"), undefined);
  });
});
