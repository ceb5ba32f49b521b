import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ManualClock, MemoryStore, createLimiter } from "../../src/index.js";

function fixed(permitLimit: number, windowMs: number, start = 0) {
  const clock = new ManualClock(start);
  const limiter = createLimiter({ algorithm: "fixed_window", permitLimit, windowMs, clock, store: new MemoryStore() });
  return { clock, limiter };
}

describe("fixed window", () => {
  test("permitLimit per window, then rejected with the time to the window end (not the window length)", () => {
    const { clock, limiter } = fixed(3, 1000, 250);
    assert.deepEqual([1, 2, 3].map(() => limiter.check("k").remaining), [2, 1, 0]);
    const d = limiter.check("k");
    assert.equal(d.allowed, false);
    assert.equal(d.reason, "rate_limited");
    assert.equal(d.retryAfterMs, 750);
    assert.equal(d.resetMs, 750);
    clock.set(900);
    assert.equal(limiter.check("k").retryAfterMs, 100);
  });

  test("exactly at the window boundary the window is fresh; 1 ms before it is not", () => {
    const { clock, limiter } = fixed(2, 1000);
    limiter.check("k");
    limiter.check("k");
    clock.set(999);
    const before = limiter.check("k");
    assert.equal(before.allowed, false);
    assert.equal(before.retryAfterMs, 1);
    clock.set(1000);
    const at = limiter.check("k");
    assert.equal(at.allowed, true);
    assert.equal(at.remaining, 1);
    assert.equal(at.resetMs, 1000);
  });

  test("windows are aligned to multiples of the window on the clock", () => {
    const { clock, limiter } = fixed(1, 1000, 1700);
    assert.equal(limiter.check("k").allowed, true);
    const d = limiter.check("k");
    assert.equal(d.retryAfterMs, 300);
    clock.set(2000);
    assert.equal(limiter.check("k").allowed, true);
  });

  test("permitCount = permitLimit passes; permitCount > permitLimit is insufficient capacity with no retry", () => {
    const { limiter } = fixed(5, 1000);
    const over = limiter.check("a", 6);
    assert.equal(over.allowed, false);
    assert.equal(over.reason, "insufficient_capacity");
    assert.equal(over.retryAfterMs, 0);
    assert.equal(limiter.peek("a").remaining, 5);
    const exact = limiter.check("a", 5);
    assert.equal(exact.allowed, true);
    assert.equal(exact.remaining, 0);
  });

  test("a cost that does not fit what is left is rate limited and consumes nothing", () => {
    const { limiter } = fixed(5, 1000);
    limiter.check("k", 3);
    const d = limiter.check("k", 3);
    assert.equal(d.reason, "rate_limited");
    assert.equal(d.remaining, 2);
    assert.equal(limiter.check("k", 2).allowed, true);
  });

  test("waiting exactly retryAfterMs after a denial is allowed", () => {
    const { clock, limiter } = fixed(2, 750, 100);
    for (let i = 0; i < 50; i++) {
      const d = limiter.check("k");
      if (d.allowed) continue;
      clock.advance(d.retryAfterMs);
      assert.equal(limiter.check("k").allowed, true);
    }
  });

  test("keys are counted separately", () => {
    const { limiter } = fixed(1, 1000);
    assert.equal(limiter.check("a").allowed, true);
    assert.equal(limiter.check("a").allowed, false);
    assert.equal(limiter.check("b").allowed, true);
  });
});
