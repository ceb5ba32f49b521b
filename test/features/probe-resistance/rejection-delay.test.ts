import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ManualClock } from "../../../src/core/clock.js";
import { seededRng } from "../../../src/core/random.js";
import { startRejectionDelay } from "../../../src/features/probe-resistance/rejection-delay.js";

const flush = () => new Promise<void>((r) => setImmediate(r));

describe("rejection delay", () => {
  test("a rejection completes no earlier than the sampled delay, and then at once", async () => {
    const clock = new ManualClock(1_000);
    const d = startRejectionDelay({ clock, floorMs: 200, ceilingMs: 200 });
    assert.equal(d.delayMs, 200);
    assert.equal(d.dueAt, 1_200);
    let done = false;
    void d.wait().then(() => (done = true));
    clock.advance(199);
    await flush();
    assert.equal(done, false);
    assert.equal(d.remainingMs(), 1);
    clock.advance(1);
    await flush();
    assert.equal(done, true);
    assert.equal(d.due, true);
  });

  test("the delay is sampled from the configured bounds with the injected Rng", () => {
    const clock = new ManualClock();
    const rng = seededRng(11);
    const delays = Array.from({ length: 2000 }, () => startRejectionDelay({ clock, rng, floorMs: 50, ceilingMs: 800 }).delayMs);
    assert.ok(delays.every((x) => x >= 50 && x <= 800));
    assert.ok(new Set(delays).size > 1900, "sampled, not fixed");
    // Same seed, same delays: reproducible in tests.
    const again = seededRng(11);
    assert.equal(startRejectionDelay({ clock, rng: again, floorMs: 50, ceilingMs: 800 }).delayMs, delays[0]);
  });

  test("the delay runs from the start, so work done meanwhile is not added on top", async () => {
    const clock = new ManualClock();
    const d = startRejectionDelay({ clock, floorMs: 300, ceilingMs: 300 });
    clock.advance(250); // e.g. the time spent relaying to the mask host
    let at = -1;
    d.after(() => (at = clock.now()));
    clock.advance(100);
    await flush();
    assert.equal(at, 300);
  });

  test("a passed deadline runs its callback on the next microtask", async () => {
    const clock = new ManualClock();
    const d = startRejectionDelay({ clock, floorMs: 10, ceilingMs: 10 });
    clock.advance(10);
    let ran = false;
    d.after(() => (ran = true));
    assert.equal(ran, false);
    await flush();
    assert.equal(ran, true);
    assert.equal(clock.pendingTimers(), 0);
  });

  test("many waiters share one timer; cancel releases them all", async () => {
    const clock = new ManualClock();
    const d = startRejectionDelay({ clock, floorMs: 1000, ceilingMs: 1000 });
    let n = 0;
    for (let i = 0; i < 50; i++) d.after(() => n++);
    assert.equal(clock.pendingTimers(), 1);
    d.cancel();
    await flush();
    assert.equal(n, 50);
    assert.equal(clock.pendingTimers(), 0);
  });

  test("bad bounds still give a bounded, finite delay", () => {
    const clock = new ManualClock();
    for (const [f, c] of [
      [Number.NaN, Number.NaN],
      [900, 10],
      [-5, Number.POSITIVE_INFINITY],
    ]) {
      const d = startRejectionDelay({ clock, floorMs: f, ceilingMs: c });
      assert.ok(Number.isFinite(d.delayMs) && d.delayMs >= 0 && d.delayMs <= 900);
    }
  });
});
