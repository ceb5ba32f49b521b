import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ManualClock, MemoryStore, createLimiter } from "../../src/index.js";

function sliding(limit: number, windowMs: number, start = 0) {
  const clock = new ManualClock(start);
  const limiter = createLimiter({ algorithm: "sliding_window", limit, windowMs, clock, store: new MemoryStore() });
  return { clock, limiter };
}

describe("sliding window counter", () => {
  test("the previous window weighs in by its overlap with the sliding window", () => {
    const { clock, limiter } = sliding(10, 1000, 0);
    for (let i = 0; i < 10; i++) assert.equal(limiter.check("k").allowed, true);
    // 25% into the next window: estimate = 10 · 0.75 = 7.5, so 2 more fit (9.5), a third does not.
    clock.set(1250);
    assert.equal(limiter.peek("k").remaining, 2);
    assert.equal(limiter.check("k").allowed, true);
    assert.equal(limiter.check("k").allowed, true);
    const d = limiter.check("k");
    assert.equal(d.allowed, false);
    assert.equal(d.reason, "rate_limited");
    // Fits when 10 · (1 − e/1000) + 2 + 1 <= 10, i.e. e >= 300: 50 ms from now.
    assert.equal(d.retryAfterMs, 50);
    clock.advance(49);
    assert.equal(limiter.peek("k").allowed, false);
    clock.advance(1);
    assert.equal(limiter.check("k").allowed, true);
  });

  test("when the current window alone is full, the wait reaches into the next window", () => {
    const { limiter } = sliding(4, 1000, 200);
    for (let i = 0; i < 4; i++) limiter.check("k");
    const d = limiter.check("k");
    // Next window starts at 1000 with prev = 4: 4 · (1 − e/1000) + 1 <= 4 ⇒ e >= 250 ⇒ t = 1250.
    assert.equal(d.retryAfterMs, 1050);
  });

  test("exactly at the window boundary the previous window counts in full", () => {
    const { clock, limiter } = sliding(3, 1000, 0);
    for (let i = 0; i < 3; i++) limiter.check("k");
    clock.set(1000);
    assert.equal(limiter.check("k").allowed, false);
    clock.set(2000);
    assert.equal(limiter.check("k").allowed, true, "a window that ended a full window ago no longer counts");
  });

  test("cost = limit passes on a fresh key; cost > limit is insufficient capacity with no retry", () => {
    const { limiter } = sliding(5, 1000);
    const over = limiter.check("a", 6);
    assert.equal(over.reason, "insufficient_capacity");
    assert.equal(over.retryAfterMs, 0);
    assert.equal(limiter.check("a", 5).allowed, true);
  });

  test("idle for two windows reads as fresh", () => {
    const { clock, limiter } = sliding(2, 500, 0);
    limiter.check("k");
    limiter.check("k");
    clock.advance(1000);
    assert.equal(limiter.peek("k").remaining, 2);
    assert.deepEqual([limiter.check("k").allowed, limiter.check("k").allowed, limiter.check("k").allowed], [true, true, false]);
  });

  test("a client that waits exactly retryAfterMs after each denial is always allowed", () => {
    const { clock, limiter } = sliding(7, 1300, 17.25);
    let denials = 0;
    for (let i = 0; i < 300; i++) {
      const d = limiter.check("k", 1 + (i % 3));
      if (d.allowed) continue;
      denials++;
      clock.advance(d.retryAfterMs);
      assert.equal(limiter.check("k", 1 + (i % 3)).allowed, true);
    }
    assert.ok(denials > 30);
  });
});
