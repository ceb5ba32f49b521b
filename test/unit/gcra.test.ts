import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ManualClock, MemoryStore, Outcome, createLimiter, gcra as algorithm, gcraParams } from "../../src/index.js";
import { gcraRescale } from "../../src/algorithms/gcra.js";

function gcra(rate: number, burst: number, start = 0, periodMs?: number) {
  const clock = new ManualClock(start);
  const limiter = createLimiter({ algorithm: "gcra", rate, burst, ...(periodMs === undefined ? {} : { periodMs }), clock, store: new MemoryStore() });
  return { clock, limiter };
}

describe("gcra", () => {
  test("2/s with burst 2 (T = 500 ms): t=0,1,2 allow, allow, deny; t=1002,1003,1004 allow, allow, deny", () => {
    const { clock, limiter } = gcra(2, 2);
    const at = (t: number) => {
      clock.set(t);
      return limiter.check("k").allowed;
    };
    assert.deepEqual([at(0), at(1), at(2)], [true, true, false]);
    assert.deepEqual([at(1002), at(1003), at(1004)], [true, true, false]);
  });

  test("the denial at t=2 asks for exactly the TAT arithmetic wait (498 ms)", () => {
    const { clock, limiter } = gcra(2, 2);
    limiter.check("k");
    clock.set(1);
    limiter.check("k");
    clock.set(2);
    const d = limiter.check("k");
    assert.equal(d.reason, "rate_limited");
    assert.equal(d.retryAfterMs, 498);
    assert.equal(d.remaining, 0);
  });

  test("5/s drained, then idle 2 s, allows exactly 5", () => {
    const { clock, limiter } = gcra(5, 5, 1000);
    let n = 0;
    while (limiter.check("k").allowed) n++;
    assert.equal(n, 5);
    clock.advance(2000);
    let after = 0;
    for (let i = 0; i < 10; i++) if (limiter.check("k").allowed) after++;
    assert.equal(after, 5);
  });

  test("after a very long idle at a large clock reading a key allows exactly burst, not one less or more", () => {
    const { clock, limiter } = gcra(3, 3, 9_000_000_000.123);
    for (let i = 0; i < 3; i++) limiter.check("k");
    clock.advance(86_400_000);
    const answers = Array.from({ length: 4 }, () => limiter.check("k").allowed);
    assert.deepEqual(answers, [true, true, true, false]);
  });

  test("a weight of 6 on a burst of 5 is insufficient capacity (never retry); a weight of 5 on a fresh key passes", () => {
    const { limiter } = gcra(5, 5);
    const big = limiter.check("a", 6);
    assert.equal(big.allowed, false);
    assert.equal(big.reason, "insufficient_capacity");
    assert.equal(big.retryAfterMs, 0);
    assert.equal(limiter.peek("a").remaining, 5, "the rejected weight consumed nothing");
    const exact = limiter.check("b", 5);
    assert.equal(exact.allowed, true);
    assert.equal(exact.remaining, 0);
  });

  test("3/s allows exactly 3 on a fresh key at every whole-ms clock reading (interval 333.33 ms)", () => {
    for (let t = 0; t < 20_000; t += 7) {
      const { limiter } = gcra(3, 3, t);
      const answers = [0, 1, 2, 3].map(() => limiter.check("k").allowed);
      assert.deepEqual(answers, [true, true, true, false], `fresh key at t=${t}`);
    }
  });

  test("at epoch-millisecond clock readings, high rates still allow exactly burst (never one less or one more)", () => {
    for (const [rate, burst] of [
      [300, 100],
      [100_000, 1000],
      [1_000_000, 10_000],
    ] as const) {
      for (let t0 = 1.7e12; t0 < 1.7e12 + 20_000; t0 += 997.3) {
        const { clock, limiter } = gcra(rate, burst, t0);
        for (let round = 0; round < 2; round++) {
          let n = 0;
          while (n <= burst && limiter.check("k").allowed) n++;
          assert.equal(n, burst, `rate ${rate}/s burst ${burst} at ${clock.now()}`);
          clock.advance(1000);
        }
      }
    }
  });

  test("cost = burst passes on a fresh key even when the interval is not exact in binary", () => {
    for (const [rate, periodMs, burst, t] of [
      [6, 4, 9, 2.37],
      [2, 143, 2, 0.37],
      [3, 1000, 3, 1e9 + 0.1],
    ] as const) {
      const { limiter } = gcra(rate, burst, t, periodMs);
      assert.equal(limiter.check("k", burst).allowed, true, `rate ${rate}/${periodMs} ms burst ${burst} at ${t}`);
    }
  });

  test("a client that sleeps exactly retryAfterMs after each denial is always allowed", () => {
    const { clock, limiter } = gcra(7, 3, 123.5, 1000);
    let denials = 0;
    for (let i = 0; i < 200; i++) {
      const d = limiter.check("k");
      if (d.allowed) continue;
      denials++;
      clock.advance(d.retryAfterMs);
      assert.equal(limiter.check("k").allowed, true, `retry ${i} after ${d.retryAfterMs} ms`);
    }
    assert.ok(denials > 50, "the loop must actually exercise denials");
  });

  test("weighted costs: 3+3+3 fit a burst of 10, a fourth 3 is rate limited with the exact wait", () => {
    const { limiter } = gcra(10, 10);
    assert.equal(limiter.check("k", 3).remaining, 7);
    assert.equal(limiter.check("k", 3).remaining, 4);
    assert.equal(limiter.check("k", 3).remaining, 1);
    const d = limiter.check("k", 3);
    assert.equal(d.reason, "rate_limited");
    assert.equal(d.retryAfterMs, 200, "two more units at 100 ms each");
  });

  test("rate per window: 6 per minute emits one every 10 s", () => {
    const { clock, limiter } = gcra(6, 1, 0, 60_000);
    assert.equal(limiter.check("k").allowed, true);
    const d = limiter.check("k");
    assert.equal(d.retryAfterMs, 10_000);
    clock.advance(9_999);
    assert.equal(limiter.check("k").allowed, false);
    clock.advance(1);
    assert.equal(limiter.check("k").allowed, true);
  });

  test("token_bucket is the same algorithm, and burst defaults to rate", () => {
    const clock = new ManualClock(0);
    const limiter = createLimiter({ algorithm: "token_bucket", rate: 4, clock });
    assert.equal(limiter.limit, 4);
    assert.equal(limiter.algorithm, "gcra");
    const answers = Array.from({ length: 5 }, () => limiter.check("k").allowed);
    assert.deepEqual(answers, [true, true, true, true, false]);
  });

  test("reset forgets a key; peek does not consume", () => {
    const { limiter } = gcra(2, 2);
    limiter.check("k");
    limiter.check("k");
    assert.equal(limiter.peek("k").allowed, false);
    assert.equal(limiter.peek("k").allowed, false);
    limiter.reset("k");
    assert.equal(limiter.peek("k").remaining, 2);
    assert.equal(limiter.check("k").allowed, true);
  });
});

describe("gcra rescale", () => {
  test("a rate change keeps the debt in units of cost", () => {
    const from = gcraParams({ rate: 10, burst: 10 });
    const to = gcraParams({ rate: 100, burst: 10 });
    const s = new Float64Array(algorithm.width);
    const out = new Outcome();
    algorithm.init(s, 0);
    algorithm.consume(s, 0, 1000, 10, from, out);
    assert.equal(out.resetMs, 1000, "10 units owed at 100 ms each");
    gcraRescale(s, 0, 1500, from, to);
    algorithm.peek(s, 0, 1500, 1, to, out);
    assert.equal(out.resetMs, 50, "5 units still owed, now at 10 ms each");
    assert.equal(out.remaining, 5);
    gcraRescale(s, 0, 1600, to, from);
    algorithm.peek(s, 0, 1600, 1, from, out);
    assert.equal(out.remaining, 10, "a paid-off debt stays paid off");
  });
});

describe("gcra outcome: remaining computed on first read", () => {
  test("reading remaining twice gives one value; a later write or transition replaces it", () => {
    const p = gcraParams({ rate: 10, burst: 10 });
    const s = new Float64Array(algorithm.width);
    algorithm.init(s, 0);
    const out = new Outcome();
    algorithm.consume(s, 0, 0, 3, p, out);
    assert.equal(out.allowed, true);
    assert.equal(out.remaining, 7);
    assert.equal(out.remaining, 7);
    out.allow(3, 0);
    assert.equal(out.remaining, 3);
    algorithm.consume(s, 0, 0, 2, p, out);
    assert.equal(out.remaining, 5);
    algorithm.consume(s, 0, 0, 9, p, out);
    assert.equal(out.allowed, false);
    assert.equal(out.remaining, 5);
  });
});
