/**
 * The measuring window of the rate tests (test/helpers/stalls.ts), on the
 * manual clock with stalls given by hand: a window ends, whatever the stalls,
 * and no later than its bound. Under CPU load the window was seen to never
 * end: a stall that began a hair before the planned end made every
 * extension land inside that stall again (creeping through it a few
 * microseconds per step), and a window extended to its bound compared
 * `(from + maxMs) - from` with `maxMs`, which float rounding makes smaller
 * for about one `from` in twenty.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../../src/core/clock.js";
import { rateBounds, StallWatch } from "../../helpers/stalls.js";

/** Runs `p` on `clock`, 1 ms at a time; fails if it has not settled within `limitMs` of clock time. */
async function onClock<T>(clock: ManualClock, p: Promise<T>, limitMs: number): Promise<T> {
  let done = false;
  let value: T | undefined;
  void p.then((v) => {
    done = true;
    value = v;
  });
  const start = clock.now();
  while (!done && clock.now() - start < limitMs) {
    clock.advance(1);
    await new Promise((r) => setImmediate(r));
  }
  assert.ok(done, `the window had not ended ${limitMs} ms after it started`);
  return value!;
}

describe("the rate tests' measuring window", () => {
  test("with no stall it ends after its length", async () => {
    const clock = new ManualClock(1000);
    const w = new StallWatch({ clock, sample: false });
    const to = await onClock(clock, w.windowEnd(1000, 2000, 31.25, 8000), 10_000);
    assert.equal(to, 3000);
  });

  test("a stall inside the window extends it by what the stall cost", async () => {
    const clock = new ManualClock(1000);
    const w = new StallWatch({ clock, sample: false });
    w.noteGap(1500, 1600); // 100 ms, of which the burst (31.25 ms) was banked
    const to = await onClock(clock, w.windowEnd(1000, 2000, 31.25, 8000), 10_000);
    assert.equal(to, 3000 + 100 - 31.25);
    assert.equal(to - 1000 - w.lostMs(1000, to, 31.25), 2000);
  });

  test("a stall that began just before the planned end moves the end past the stall and its burst, at once", async () => {
    const clock = new ManualClock(1000);
    const w = new StallWatch({ clock, sample: false });
    const from = 24121.879651;
    clock.set(from);
    // As recorded under two CPU hogs: the stall began 0.1 µs before the planned end and lasted 37 ms.
    const a = from + 2000 - 1e-4;
    w.noteGap(a, a + 37);
    const to = await onClock(clock, w.windowEnd(from, 2000, 31.25, 8000), 10_000);
    assert.equal(to, a + 37 + 31.25);
  });

  test("a window the stalls stretch to its bound ends there, whatever the rounding of its start", async () => {
    // (from + 8000) - from is 7999.999999999998 here: a bound compared as a length was never reached.
    const from = 13155.1234002;
    const maxMs = 8000;
    const last = from + maxMs;
    const clock = new ManualClock(from);
    const w = new StallWatch({ clock, sample: false });
    // The process ran 10 ms in every 210 ms: with the burst banked in each stall, some 1600 ms of the 2000 wanted in the 8000 ms bound.
    for (let t = from; t < last + 1000; t += 210) w.noteGap(t + 10, t + 210);
    const to = await onClock(clock, w.windowEnd(from, 2000, 31.25, maxMs), 20_000);
    assert.equal(to, last);
    assert.ok(to - from - w.lostMs(from, to, 31.25) < 2000);
  });

  test("stalls recorded while the window runs extend it, within its bound", async () => {
    const clock = new ManualClock(0);
    const w = new StallWatch({ clock, sample: false });
    const p = w.windowEnd(0, 1000, 10, 4000);
    // Stalls noted as the clock reaches their end, as the ticker notes them.
    const gaps: [number, number][] = [[200, 400], [950, 1300], [1500, 1520]];
    let done = false;
    let to = 0;
    void p.then((v) => {
      done = true;
      to = v;
    });
    while (!done && clock.now() < 10_000) {
      clock.advance(1);
      for (const g of gaps) if (g[1] === clock.now()) w.noteGap(g[0], g[1]);
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(done, "the window ended");
    assert.ok(to <= 4000);
    assert.ok(to - w.lostMs(0, to, 10) >= 1000, `runnable ${to - w.lostMs(0, to, 10)} of 1000 ms`);
  });
});

/** Arrivals of `bytesPerMs` every ms in (from, to], as a meter logs them, appended to `m`. */
function arrive(m: { t: number[]; total: number[] }, from: number, to: number, bytesPerMs: number): void {
  for (let t = from + 1; t <= to; t++) {
    m.t.push(t);
    m.total.push((m.total.at(-1) ?? 0) + bytesPerMs);
  }
}

describe("what stalls cost a shaper, by its bucket replayed from the arrivals", () => {
  // 1000 bytes/s (1 byte per ms) with a 30-byte burst: a burst lasts 30 ms.
  const CAP = 1000;
  const BURST = 30;

  test("with no stall nothing is excused: a shaper that delivers 10% short shows the whole shortfall", () => {
    const w = new StallWatch({ clock: new ManualClock(0), sample: false });
    const m = { t: [] as number[], total: [] as number[] };
    arrive(m, 0, 1000, 0.9);
    assert.equal(w.bucketLostMs(0, 1000, CAP, BURST, [m]), 0);
    const { low } = rateBounds(CAP, 0.05, 1000, 0);
    assert.ok(900 < low, "900 bytes/s fails the lower bound");
  });

  test("a stall that begins before the last one's burst is spent banks less than a burst, and costs the difference", () => {
    const w = new StallWatch({ clock: new ManualClock(0), sample: false });
    const m = { t: [] as number[], total: [] as number[] };
    arrive(m, 0, 100, 1); // throttled: the bucket is empty
    w.noteGap(100, 160); // 60 ms: the bucket fills after 30 and throws away 30 ms
    arrive(m, 159, 170, 2); // spending the burst at twice the rate: 22 bytes in (159, 170], debt 22 - 10 = 12 ms...
    w.noteGap(170, 200); // ...so the next stall begins with 18 ms of credit: full after 12, 18 ms thrown away
    arrive(m, 199, 230, 2);
    arrive(m, 230, 400, 1);
    assert.equal(w.lostMs(0, 400, 30), 30, "as if each stall began with an empty bucket: 30 + 0");
    assert.equal(w.bucketLostMs(0, 400, CAP, BURST, [m]), 30 + 18);
  });

  test("a full bucket while the process runs is not excused, just after a stall as anywhere", () => {
    const w = new StallWatch({ clock: new ManualClock(0), sample: false });
    const m = { t: [] as number[], total: [] as number[] };
    arrive(m, 0, 100, 1);
    w.noteGap(100, 140);
    // The relay sends nothing for 50 ms after the stall (more than the 5 ms of its first turn), then only the rate.
    arrive(m, 190, 400, 1);
    // The stall cost 10 ms (40 - the burst): the bucket was empty when it began; the 50 ms of full bucket after it are the shaper's.
    assert.equal(w.bucketLostMs(0, 400, CAP, BURST, [m]), 10);
  });

  test("a shaper that delivers short gets no more allowance for stalls than if each had banked a whole burst", () => {
    const w = new StallWatch({ clock: new ManualClock(0), sample: false });
    const m = { t: [] as number[], total: [] as number[] };
    // 90% of the rate while it runs, a 40-ms stall every 100 ms: its bucket is full whenever a stall begins.
    for (let t = 0; t < 1000; t += 100) {
      arrive(m, t, t + 60, 0.9);
      w.noteGap(t + 60, t + 100);
    }
    assert.equal(w.bucketLostMs(0, 960, CAP, BURST, [m]), w.lostMs(0, 960, 30));
    assert.equal(w.lostMs(0, 960, 30), 9 * 10);
  });

  test("connections sharing a bucket are replayed together", () => {
    const w = new StallWatch({ clock: new ManualClock(0), sample: false });
    const a = { t: [] as number[], total: [] as number[] };
    const b = { t: [] as number[], total: [] as number[] };
    arrive(a, 0, 300, 0.5);
    arrive(b, 0, 300, 0.5);
    assert.equal(w.bucketLostMs(0, 300, CAP, BURST, [a, b]), 0);
    w.noteGap(300, 400);
    assert.equal(w.bucketLostMs(0, 390, CAP, BURST, [a, b]), 90, "a stall still running at the end costs its whole part in the window");
  });
});
