/**
 * Memory after an IP-churn flood (docs/memory.md, "Under an IP-churn
 * flood"): a real `portcullis run` (built, as installed) flooded by 1,000
 * addresses each failing a login, with records that expire 3 s after their
 * last failure. Once the sweeper has emptied the tables, the gateway gives
 * the flood's heap back (two full collections, src/gateway/guard/heap-reclaim.ts),
 * so RSS comes back near idle: within AFTER_MARGIN_MB of it, where the flood
 * itself took it at least FLOOD_GROWTH_MB above it (measured: idle 64, peak
 * 102, 74 after the drain with 3,000 addresses; without the collections RSS
 * stayed at the peak for minutes, until V8's memory reducer happened to run).
 *
 * RSS is a size, not a rate: a loaded machine makes the flood slower, not the
 * process bigger. The wait after the flood covers the records' expiry (3 s),
 * the sweep interval (10 s) and the gap between the two collections (6 s),
 * with 11 s to spare for a machine that runs timers late.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ipChurn } from "../../bench/stress/ip-churn.js";

/** RSS after the drain is at most this far above idle (MiB). */
const AFTER_MARGIN_MB = 16;
/** The flood must have grown RSS at least this much, or the test would measure nothing. */
const FLOOD_GROWTH_MB = 12;

test("after an IP-churn flood drains, the gateway's RSS comes back near idle", { timeout: 240_000 }, async (t) => {
  const r = await ipChurn({ addresses: 1000, failures: 1, banDuration: "1s", banWindow: "1s", settleMs: 30_000, recheckEvery: 100, timeLimitMs: 200_000 });
  const line = `RSS idle ${r.rssIdleMiB.toFixed(1)} MiB, peak ${r.rssPeakMiB.toFixed(1)}, end of flood ${r.rssEndMiB.toFixed(1)}, after the drain ${r.rssSettledMiB.toFixed(1)} (${r.seconds.toFixed(0)} s of flood)`;
  t.diagnostic(line);
  assert.ok(r.rssPeakMiB >= r.rssIdleMiB + FLOOD_GROWTH_MB, `the flood grew the process: ${line}`);
  assert.ok(r.rssSettledMiB <= r.rssIdleMiB + AFTER_MARGIN_MB, `back within ${AFTER_MARGIN_MB} MiB of idle: ${line}`);
});
