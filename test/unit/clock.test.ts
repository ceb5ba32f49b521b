import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type Decision, ManualClock, MemoryStore, type RateLimitOptions, createLimiter, systemClock } from "../../src/index.js";

const ALGORITHMS: RateLimitOptions[] = [
  { algorithm: "gcra", rate: 4, burst: 4 },
  { algorithm: "fixed_window", permitLimit: 4, windowMs: 1000 },
  { algorithm: "sliding_window", limit: 4, windowMs: 1000 },
];

const view = (d: Decision) => [d.allowed, d.remaining, d.resetMs, d.retryAfterMs, d.reason];

describe("clock", () => {
  for (const options of ALGORITHMS) {
    test(`${options.algorithm}: a clock going backwards counts as no time passed (no refill, no crash)`, () => {
      const clock = new ManualClock(10_500);
      const l = createLimiter({ ...options, clock, store: new MemoryStore() });
      for (let i = 0; i < 4; i++) assert.equal(l.check("k").allowed, true);
      const atLatest = view(l.peek("k"));
      for (const back of [10_499, 5_000, 0, -1e12]) {
        clock.set(back);
        assert.deepEqual(view(l.peek("k")), atLatest, `at ${back}`);
        const d = l.check("k");
        assert.equal(d.allowed, false, `no refill at ${back}`);
        assert.ok(Number.isFinite(d.retryAfterMs) && d.retryAfterMs > 0);
        assert.equal(l.check("fresh-" + back).allowed, true, "fresh keys still work");
      }
      // Forward again from the latest reading: refills as if the regression never happened.
      clock.set(10_500 + 1500);
      assert.equal(l.check("k").allowed, true);
    });
  }

  test("ManualClock fires timers in due order during advance, each seeing its due time", () => {
    const clock = new ManualClock(100);
    const seen: string[] = [];
    clock.setTimer(() => seen.push(`b@${clock.now()}`), 50);
    clock.setTimer(() => seen.push(`a@${clock.now()}`), 20);
    const cancelled = clock.setTimer(() => seen.push("never"), 30);
    cancelled.cancel();
    clock.advance(40);
    assert.deepEqual(seen, ["a@120"]);
    clock.advance(100);
    assert.deepEqual(seen, ["a@120", "b@150"]);
    assert.equal(clock.now(), 240);
    assert.equal(clock.pendingTimers(), 0);
  });

  test("ManualClock.set backwards fires nothing; wall time follows the monotonic time", () => {
    const clock = new ManualClock(1000, 5000);
    let fired = 0;
    clock.setTimer(() => fired++, 10);
    clock.set(500);
    assert.equal(fired, 0);
    assert.equal(clock.wallNow(), 4500);
    clock.set(1010);
    assert.equal(fired, 1);
  });

  test("the system clock is monotonic", () => {
    let last = systemClock.now();
    for (let i = 0; i < 10_000; i++) {
      const t = systemClock.now();
      assert.ok(t >= last);
      last = t;
    }
  });
});

describe("clock regressions with a queue", () => {
  test("a waiter queued while the clock reads earlier than before is admitted at the boundary, with one timer firing", async () => {
    const clock = new CountingClock(999);
    const l = createLimiter({ algorithm: "fixed_window", permitLimit: 1, windowMs: 1000, queueLimit: 1, clock });
    await l.acquire("k");
    clock.set(-1e6); // the limit keeps counting from 999
    let fired = 0;
    const waiter = l.acquire("k").then((d) => {
      fired++;
      return d;
    });
    assert.equal(clock.pendingTimers(), 1);
    clock.advance(1e6 + 999);
    await new Promise<void>((r) => setImmediate(r));
    assert.equal(fired, 0, "not before the window opens");
    clock.advance(1);
    assert.equal((await waiter).allowed, true);
    assert.equal(clock.pendingTimers(), 0);
    assert.ok(clock.timersSet <= 2, `the queue timer must aim at the boundary on the clock it runs on (set ${clock.timersSet} times)`);
  });
});

class CountingClock extends ManualClock {
  timersSet = 0;
  override setTimer(fn: () => void, ms: number) {
    this.timersSet++;
    return super.setTimer(fn, ms);
  }
}
