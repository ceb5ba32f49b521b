/**
 * The offender table on a ManualClock: counts per key inside a sliding
 * window of whole minutes, forgets what is older than its horizon, and stays
 * within its size while keeping the clients that keep offending.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/core/clock.js";
import { OffenderTracker } from "../../src/metrics/offenders.js";

const MIN = 60_000;

describe("OffenderTracker", () => {
  test("ranks keys by offences in the window, with their kinds", () => {
    const clock = new ManualClock(0);
    const t = new OffenderTracker({ clock });
    for (let i = 0; i < 5; i++) t.record("10.0.0.1", "auth");
    t.record("10.0.0.1", "ban");
    t.record("10.0.0.2", "connection_rate");
    t.record("10.0.0.2", "connection_rate");
    const top = t.top(10, 5 * MIN);
    assert.deepEqual(
      top.map((o) => [o.key, o.count, o.kinds]),
      [
        ["10.0.0.1", 6, ["auth", "ban"]],
        ["10.0.0.2", 2, ["connection_rate"]],
      ],
    );
    assert.equal(t.top(1, 5 * MIN).length, 1);
    assert.equal(t.max(5 * MIN), 6);
  });

  test("offences older than the window stop counting; after the horizon nothing is left", () => {
    const clock = new ManualClock(0);
    const t = new OffenderTracker({ clock });
    for (let i = 0; i < 10; i++) t.record("10.0.0.1", "auth");
    clock.advance(3 * MIN);
    for (let i = 0; i < 4; i++) t.record("10.0.0.1", "auth");
    assert.equal(t.max(5 * MIN), 14);
    clock.advance(3 * MIN);
    // The first ten are 6 minutes old: outside 5 minutes, inside the hour.
    assert.equal(t.max(5 * MIN), 4);
    assert.equal(t.max(60 * MIN), 14);
    clock.advance(58 * MIN);
    assert.equal(t.max(60 * MIN), 0);
    assert.deepEqual(t.top(10, 60 * MIN), []);
    // A slot reused an hour later starts from zero.
    t.record("10.0.0.1", "auth");
    assert.equal(t.max(60 * MIN), 1);
  });

  test("bounded: a churn of one-shot keys never grows the table, and a key that keeps offending stays", () => {
    const clock = new ManualClock(0);
    const t = new OffenderTracker({ clock, maxKeys: 100 });
    for (let i = 0; i < 10_000; i++) {
      t.record(`10.1.${i >> 8}.${i & 255}`, "connection_rate");
      if (i % 50 === 0) t.record("10.0.0.99", "auth");
      assert.ok(t.size <= 100);
    }
    assert.equal(t.size, 100);
    const top = t.top(1, 5 * MIN)[0]!;
    assert.equal(top.key, "10.0.0.99");
    assert.equal(top.count, 200);
  });

  test("at most a few kinds are kept per key", () => {
    const t = new OffenderTracker({ clock: new ManualClock(0) });
    for (let i = 0; i < 50; i++) t.record("10.0.0.1", `kind${i}`);
    const o = t.top(1, MIN)[0]!;
    assert.equal(o.count, 50);
    assert.equal(o.kinds.length, 8);
  });
});
