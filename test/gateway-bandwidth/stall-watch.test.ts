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
import { ManualClock } from "../../src/core/clock.js";
import { StallWatch } from "../helpers/stalls.js";

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
