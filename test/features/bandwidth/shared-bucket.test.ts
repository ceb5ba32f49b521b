import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../../src/core/clock.js";
import { SharedBucket, quantumFor } from "../../../src/features/bandwidth/shared-bucket.js";
import { ChainGate, type Gate } from "../../../src/features/bandwidth/gate.js";

/** A consumer that always wants `max` more bytes, as a pipe with a full source does. */
function greedy(gate: Gate, max = 64 * 1024): { total: number; sizes: number[]; stop(): void } {
  const s = { total: 0, sizes: [] as number[], stop: () => gate.close() };
  const ask = (): void => {
    for (;;) {
      const g = gate.acquire(max, onGrant);
      if (g === 0) return;
      s.total += g;
      s.sizes.push(g);
    }
  };
  const onGrant = (g: number): void => {
    s.total += g;
    s.sizes.push(g);
    ask();
  };
  ask();
  return s;
}

describe("SharedBucket", () => {
  test("paces one greedy connection at the rate after the burst, in grants no larger than the quantum", () => {
    const clock = new ManualClock(0);
    const b = new SharedBucket(clock, { bytesPerSecond: 100_000, burst: 10_000 }, undefined, 1000);
    const c = greedy(b.attach());
    assert.equal(c.total, 10_000, "the burst goes at once");
    clock.advance(1000);
    assert.ok(Math.abs(c.total - 110_000) <= 1000, `after 1 s: ${c.total}`);
    clock.advance(9000);
    assert.ok(Math.abs(c.total - 1_010_000) <= 1000, `after 10 s: ${c.total}`);
    assert.ok(Math.max(...c.sizes) <= 1000, "a 64 KiB ask is split into quanta");
  });

  test("a chunk larger than the burst is split and paced, never let through after a fixed wait", () => {
    const clock = new ManualClock(0);
    const b = new SharedBucket(clock, { bytesPerSecond: 1000, burst: 100 });
    const g = b.attach();
    let moved = 0;
    const want = 5000;
    const step = (n: number): void => {
      moved += n;
      if (moved < want) {
        const now = g.acquire(want - moved, step);
        if (now > 0) step(now);
      }
    };
    step(0);
    assert.equal(moved, 100);
    for (let t = 1; t <= 4900; t += 100) {
      clock.advance(100);
      // At every point the bytes moved never exceed burst + rate · elapsed.
      assert.ok(moved <= 100 + t + 99, `at ${t} ms moved ${moved}`);
    }
    clock.advance(200);
    assert.equal(moved, want);
  });

  test("four greedy connections share one bucket evenly (round-robin quanta)", () => {
    const clock = new ManualClock(0);
    const b = new SharedBucket(clock, { bytesPerSecond: 1_000_000, burst: 50_000 });
    const cs = [greedy(b.attach()), greedy(b.attach()), greedy(b.attach()), greedy(b.attach())];
    const start = cs.map((c) => c.total);
    clock.advance(10_000);
    const got = cs.map((c, i) => c.total - start[i]!);
    const sum = got.reduce((a, x) => a + x, 0);
    assert.ok(Math.abs(sum - 10_000_000) <= quantumFor({ bytesPerSecond: 1_000_000, burst: 50_000 }) * 4, `sum ${sum}`);
    for (const x of got) assert.ok(x / sum > 0.24 && x / sum < 0.26, `share ${x / sum}`);
  });

  test("a connection that asks little is not starved by a greedy one", () => {
    const clock = new ManualClock(0);
    const b = new SharedBucket(clock, { bytesPerSecond: 10_000, burst: 1000 }, undefined, 500);
    const hog = greedy(b.attach());
    const small = b.attach();
    clock.advance(100);
    let got = 0;
    assert.equal(small.acquire(200, (n) => (got = n)), 0, "must queue behind the hog");
    clock.advance(200);
    assert.equal(got, 200, "served within one turn of the ring");
    assert.ok(hog.total > 0);
  });

  test("setRate changes the pace of live connections from now on, keeping debt in bytes", () => {
    const clock = new ManualClock(0);
    const b = new SharedBucket(clock, { bytesPerSecond: 10_000, burst: 1000 }, undefined, 100);
    const c = greedy(b.attach());
    clock.advance(1000);
    const before = c.total;
    b.setRate({ bytesPerSecond: 40_000, burst: 1000 });
    clock.advance(1000);
    assert.ok(Math.abs(c.total - before - 40_000) <= 200, `after raise: ${c.total - before}`);
    const mid = c.total;
    b.setRate({ bytesPerSecond: 5000, burst: 1000 });
    clock.advance(1000);
    assert.ok(Math.abs(c.total - mid - 5000) <= 200, `after lower: ${c.total - mid}`);
  });

  test("unlimited grants at once, and setting a rate later shapes the same connections", () => {
    const clock = new ManualClock(0);
    const b = new SharedBucket(clock, null);
    const g = b.attach();
    assert.equal(g.acquire(1_000_000, () => assert.fail("must not wait")), 1_000_000);
    b.setRate({ bytesPerSecond: 1000, burst: 100 });
    const c = greedy(g);
    clock.advance(1000);
    assert.ok(c.total >= 1000 && c.total <= 1100, `${c.total}`);
    c.stop();
    const w = b.attach();
    let got = 0;
    assert.equal(w.acquire(5000, (n) => (got = n)), 0, "limited: waits");
    b.setRate(null);
    assert.equal(got, 5000, "lifting the cap releases the waiter with all it asked for");
  });

  test("a closed or cancelled connection leaves the ring and the timer goes with the last waiter", () => {
    const clock = new ManualClock(0);
    const b = new SharedBucket(clock, { bytesPerSecond: 1000, burst: 100 });
    const g1 = b.attach();
    const g2 = b.attach();
    assert.equal(g1.acquire(100, () => {}), 100);
    let fired = 0;
    assert.equal(g1.acquire(100, () => fired++), 0);
    assert.equal(g2.acquire(100, () => fired++), 0);
    assert.equal(clock.pendingTimers(), 1, "one timer for the bucket, not one per connection");
    g1.cancel();
    g2.close();
    assert.equal(clock.pendingTimers(), 0);
    clock.advance(1000);
    assert.equal(fired, 0);
    assert.equal(b.connections, 1);
    g1.close();
    assert.equal(b.connections, 0);
    assert.ok(b.isIdle(clock.now()));
  });

  test("timers that fire late lose no rate: the bucket credits the time elapsed on the clock, up to its burst", () => {
    // Rate and burst of the gateway timing test: the burst lasts 62.5 ms.
    const rate = 1024 * 1024;
    const burst = 64 * 1024;
    for (const chain of [false, true]) {
      const clock = new ManualClock(0);
      const identity = new SharedBucket(clock, { bytesPerSecond: rate, burst });
      // The gateway's shape: the identity's bucket, then an uncapped IP bucket.
      const gate = chain ? new ChainGate([identity.attach(), new SharedBucket(clock, null).attach()]) : identity.attach();
      const c = greedy(gate);
      // A loaded machine: every step lands 1 to 50 ms later (seeded), so a timer fires up to 50 ms past its due
      // time, and the bucket is read at most 55 ms (a step after a quantum's wait) apart: within the burst's 62.5 ms.
      let seed = 7;
      let late = 0;
      while (clock.now() < 100_000) {
        seed = (seed * 48_271) % 2_147_483_647;
        const step = 1 + (seed % 50);
        late += step;
        clock.set(clock.now() + step);
      }
      assert.ok(late >= 100_000 && clock.pendingTimers() === 1);
      const exact = burst + (rate * clock.now()) / 1000;
      // Short of exact by less than the one quantum waiting for its timer; never above.
      assert.ok(c.total <= exact && exact - c.total < quantumFor({ bytesPerSecond: rate, burst }), `${chain ? "chain" : "bucket"}: ${c.total} of ${exact}`);
    }
  });

  test("a stall longer than the burst's time loses only what exceeds the burst", () => {
    const clock = new ManualClock(0);
    const b = new SharedBucket(clock, { bytesPerSecond: 1000, burst: 100 }, undefined, 10);
    const c = greedy(b.attach());
    clock.advance(1000);
    const before = c.total;
    // The one timer fires 500 ms late: the bucket banks 100 bytes (its burst), the other 400 ms are gone.
    clock.set(clock.now() + 500);
    assert.ok(Math.abs(c.total - before - 100) <= 10, `banked ${c.total - before}`);
    clock.advance(1000);
    assert.ok(Math.abs(c.total - before - 1100) <= 10, `after the stall it runs at the rate again: ${c.total - before}`);
  });

  test("reports delayed bytes and throttled time", () => {
    const clock = new ManualClock(0);
    const b = new SharedBucket(clock, { bytesPerSecond: 1000, burst: 100 });
    const c = greedy(b.attach());
    clock.advance(500);
    c.stop();
    assert.ok(b.stats.bytesDelayed >= 450 && b.stats.bytesDelayed <= 500, `${b.stats.bytesDelayed}`);
    assert.ok(b.stats.throttledMs >= 450 && b.stats.throttledMs <= 500, `${b.stats.throttledMs}`);
    assert.equal(b.stats.bytesGranted, c.total);
  });
});

describe("ChainGate", () => {
  test("bytes pass only as fast as the slowest stage, and no stage is charged for bytes another refused", () => {
    const clock = new ManualClock(0);
    const fast = new SharedBucket(clock, { bytesPerSecond: 10_000, burst: 1000 });
    const slow = new SharedBucket(clock, { bytesPerSecond: 2000, burst: 500 });
    const c = greedy(new ChainGate([fast.attach(), slow.attach()]));
    clock.advance(5000);
    assert.ok(Math.abs(c.total - (500 + 10_000)) <= 1100, `${c.total}`);
    // The fast stage granted at most one quantum more than went through.
    assert.ok(fast.stats.bytesGranted - c.total <= quantumFor({ bytesPerSecond: 10_000, burst: 1000 }), `${fast.stats.bytesGranted} vs ${c.total}`);
  });

  test("close detaches from every stage", () => {
    const clock = new ManualClock(0);
    const a = new SharedBucket(clock, { bytesPerSecond: 1000 });
    const b = new SharedBucket(clock, null);
    const g = new ChainGate([a.attach(), b.attach()]);
    g.close();
    assert.equal(a.connections + b.connections, 0);
    assert.equal(g.acquire(10, () => {}), 0);
  });
});
