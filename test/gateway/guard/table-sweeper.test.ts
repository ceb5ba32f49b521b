/**
 * The failed-login tables' sweeper (src/gateway/guard/table-sweeper.ts) on
 * the manual clock: it removes stale records in batches while a table has
 * records, and once a sweep empties every table it calls its drain hook
 * (by default the heap reclaim of docs/memory.md) exactly once per drain.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ManualClock } from "../../../src/index.js";
import { PenaltyBox } from "../../../src/limiter/penalty-box.js";
import { SWEEP_INTERVAL_MS, TableSweeper } from "../../../src/gateway/guard/table-sweeper.js";

const RETENTION_MS = 2000;

function box(clock: ManualClock): PenaltyBox {
  return new PenaltyBox({ clock, maxKeys: 1000, banFailures: 3, banWindowMs: 1000, banDurationMs: 1000, retentionMs: RETENTION_MS });
}

test("a drain calls the hook once, after the sweep that empties every table; a table still holding records does not", () => {
  const clock = new ManualClock();
  const a = box(clock);
  const b = box(clock);
  let drains = 0;
  const sweeper = new TableSweeper(clock, () => [a, b], () => drains++);
  for (let i = 0; i < 300; i++) {
    a.recordFailure(`10.0.${i >> 8}.${i & 255}`);
    sweeper.arm();
  }
  clock.advance(SWEEP_INTERVAL_MS - RETENTION_MS / 2);
  b.recordFailure("10.9.0.1");
  sweeper.arm();
  // First sweep: a's records are stale (retention passed), b's one is not: no drain yet.
  clock.advance(RETENTION_MS / 2);
  assert.equal(a.size, 0, "stale records swept");
  assert.equal(drains, 0, "b still holds a record");
  // b's record goes stale; the next sweep empties both tables.
  clock.advance(SWEEP_INTERVAL_MS);
  assert.equal(b.size, 0);
  assert.equal(drains, 1, "one drain");
  // Nothing left: no timer, no further call.
  clock.advance(5 * SWEEP_INTERVAL_MS);
  assert.equal(drains, 1, "the hook is not called again while the tables stay empty");
  // A new flood and its drain call it again.
  a.recordFailure("10.1.0.1");
  sweeper.arm();
  clock.advance(SWEEP_INTERVAL_MS);
  assert.equal(drains, 2);
  sweeper.close();
});

test("a table emptied by other means (every record forgotten) is not a drain: nothing was swept", () => {
  const clock = new ManualClock();
  const a = box(clock);
  let drains = 0;
  const sweeper = new TableSweeper(clock, () => [a], () => drains++);
  a.recordFailure("10.0.0.1");
  sweeper.arm();
  a.recordSuccess("10.0.0.1");
  clock.advance(SWEEP_INTERVAL_MS);
  assert.equal(a.size, 0);
  assert.equal(drains, 0);
  sweeper.close();
});
