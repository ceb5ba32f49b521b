import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decodeReply, settle } from "../../src/stores/redis/rate-batcher.js";
import type { Outcome } from "../../src/algorithms/outcome.js";

/** A reply as the rate script packs it: four little-endian doubles per operation. */
function reply(...ops: [number, number, number, number][]): Buffer {
  const b = Buffer.alloc(ops.length * 32);
  ops.forEach((op, i) => op.forEach((x, k) => b.writeDoubleLE(x, i * 32 + k * 8)));
  return b;
}

describe("rate script replies", () => {
  test("allowed and rejected operations decode exactly, reasons by code", () => {
    const [a, r, c] = decodeReply(reply([1, 7, 0.1 + 0.2, 0], [2, 0, 1234.5, 99], [3, 2, -0, 0]));
    assert.deepEqual([a!.allowed, a!.remaining, a!.resetMs], [true, 7, 0.1 + 0.2]);
    assert.deepEqual([r!.allowed, r!.reason, r!.remaining, r!.resetMs, r!.retryAfterMs], [false, "rate_limited", 0, 1234.5, 99]);
    assert.deepEqual([c!.allowed, c!.reason, c!.remaining], [false, "insufficient_capacity", 2]);
    assert.ok(Object.is(c!.resetMs, -0), "a double's sign survives");
  });

  test("a reply that is not the script's (text, an error, a truncated record) decodes to nothing it did not carry", () => {
    assert.deepEqual(decodeReply("1 7 0.5"), []);
    assert.deepEqual(decodeReply(undefined), []);
    assert.deepEqual(decodeReply(new Error("BUSY")), []);
    const cut = reply([1, 1, 1, 0], [1, 2, 2, 0]).subarray(0, 50);
    assert.equal(decodeReply(cut).length, 1);
  });

  test("settle answers every waiter: undecided operations get undefined (the failure mode answers them)", () => {
    const got: (Outcome | undefined)[] = [];
    settle([(o) => got.push(o), (o) => got.push(o), (o) => got.push(o)], reply([1, 4, 10, 0]));
    assert.equal(got.length, 3);
    assert.equal(got[0]?.remaining, 4);
    assert.deepEqual(got.slice(1), [undefined, undefined]);
  });

  test("a reply inside a larger buffer (as a socket read hands it over) decodes from its own offset", () => {
    const big = Buffer.concat([Buffer.from("xyz"), reply([1, 5, 6, 0])]);
    const [o] = decodeReply(big.subarray(3));
    assert.equal(o!.remaining, 5);
    assert.equal(o!.resetMs, 6);
  });
});
