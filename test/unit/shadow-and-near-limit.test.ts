import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ManualClock, MemoryStore, createLimiter } from "../../src/index.js";

describe("shadow mode", () => {
  test("would-be rejections are computed and reported but let through, and consume nothing", () => {
    const clock = new ManualClock(0);
    const store = new MemoryStore();
    const shadow = createLimiter({ name: "shadow", algorithm: "fixed_window", permitLimit: 2, windowMs: 1000, clock, store, shadow: true });
    const enforced = createLimiter({ name: "enforced", algorithm: "fixed_window", permitLimit: 2, windowMs: 1000, clock, store });
    assert.equal(shadow.shadow, true);
    for (let i = 0; i < 2; i++) {
      const d = shadow.check("k");
      assert.equal(d.allowed, true);
      assert.equal(d.shadowed, false, "an allowed check is not a shadowed one");
      enforced.check("k");
    }
    const s = shadow.check("k");
    const e = enforced.check("k");
    assert.equal(e.allowed, false);
    assert.equal(s.allowed, true);
    assert.equal(s.shadowed, true);
    assert.equal(s.reason, e.reason, "the shadowed decision says why it would have rejected");
    assert.equal(s.remaining, e.remaining);
    assert.equal(s.resetMs, e.resetMs);
    assert.equal(s.retryAfterMs, 0, "nothing to wait for: it was let through");
    clock.set(1000);
    assert.equal(shadow.check("k").remaining, 1, "the shadowed checks consumed nothing beyond the limit");
  });

  test("insufficient capacity in shadow mode is reported too", () => {
    const l = createLimiter({ algorithm: "gcra", rate: 5, burst: 5, shadow: true, clock: new ManualClock() });
    const d = l.check("k", 6);
    assert.deepEqual([d.allowed, d.shadowed, d.reason], [true, true, "insufficient_capacity"]);
    assert.equal(l.peek("k").remaining, 5);
  });
});

describe("near-limit signal", () => {
  test("nearLimit is set when remaining <= 20% of the limit", () => {
    const l = createLimiter({ algorithm: "fixed_window", permitLimit: 10, windowMs: 1000, clock: new ManualClock() });
    const flags = Array.from({ length: 11 }, () => {
      const d = l.check("k");
      return [d.remaining, d.nearLimit];
    });
    assert.deepEqual(flags, [
      [9, false],
      [8, false],
      [7, false],
      [6, false],
      [5, false],
      [4, false],
      [3, false],
      [2, true],
      [1, true],
      [0, true],
      [0, true],
    ]);
  });

  test("the share is configurable", () => {
    const l = createLimiter({ algorithm: "gcra", rate: 10, burst: 10, nearLimitRatio: 0.5, clock: new ManualClock() });
    const near = Array.from({ length: 6 }, () => l.check("k").nearLimit);
    assert.deepEqual(near, [false, false, false, false, true, true]);
    const off = createLimiter({ algorithm: "gcra", rate: 10, burst: 10, nearLimitRatio: 0, clock: new ManualClock() });
    const flags = Array.from({ length: 10 }, () => off.check("k").nearLimit);
    assert.deepEqual(flags, [...Array(9).fill(false), true], "with ratio 0 only an exhausted limit is near");
  });
});

describe("shadow mode with a queue", () => {
  test("a shadowed limit never makes a caller wait in its queue", async () => {
    const clock = new ManualClock(0);
    const l = createLimiter({ algorithm: "fixed_window", permitLimit: 1, windowMs: 1000, queueLimit: 5, shadow: true, clock });
    assert.equal((await l.acquire("k")).allowed, true);
    let settled = false;
    const second = l.acquire("k").then((d) => {
      settled = true;
      return d;
    });
    await new Promise<void>((r) => setImmediate(r));
    assert.equal(settled, true, "answered at once, not queued");
    const d = await second;
    assert.deepEqual([d.allowed, d.shadowed, d.reason], [true, true, "rate_limited"]);
    assert.equal(clock.pendingTimers(), 0);
  });
});
