import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { ManualClock } from "../../src/index.js";
import { LeasedQuota, RedisStore } from "../../src/redis.js";
import { REDIS_URL, deletePrefix, uniquePrefix } from "./helpers.js";
import { waitUntil } from "../helpers/wait.js";

const prefix = uniquePrefix("lease");
const stores: RedisStore[] = [];

async function store(): Promise<RedisStore> {
  const s = new RedisStore({ url: REDIS_URL, prefix, timeoutMs: 2000 });
  stores.push(s);
  assert.ok(await s.ready());
  return s;
}

after(async () => {
  for (const s of stores) await s.close();
  await deletePrefix(prefix);
});

describe("leased quotas", () => {
  test("3 instances spending one bucket for 5 s stay within limit + 3 slices, with a few Redis calls per second", { timeout: 30_000 }, async () => {
    const RATE = 20_000; // units per second
    const BURST = 2_000;
    const quotas = await Promise.all(
      [0, 1, 2].map(async () => new LeasedQuota({ store: await store(), name: "stream", rate: RATE, burst: BURST, sliceMs: 100, idleMs: 200 })),
    );
    const slice = quotas[0]!.slice;
    assert.equal(slice, 2_000);
    const RUN_MS = 5_000;
    const CHUNK = 20;
    const spent = [0, 0, 0];
    let takes = 0;
    const start = performance.now();
    await Promise.all(
      quotas.map(async (q, i) => {
        while (performance.now() - start < RUN_MS) {
          const g = await q.take("one-stream", CHUNK);
          spent[i] = spent[i]! + g.granted;
          takes++;
          // A shaper waits retryAfterMs (at most one slice's worth of time).
          if (g.granted === 0) await new Promise((r) => setTimeout(r, Math.max(1, g.retryAfterMs)));
          else if (takes % 50 === 0) await new Promise((r) => setImmediate(r));
        }
      }),
    );
    const elapsedS = (performance.now() - start) / 1000;
    const total = spent[0]! + spent[1]! + spent[2]!;
    const ceiling = BURST + RATE * elapsedS + 3 * slice;
    assert.ok(total <= ceiling, `spent ${total} > limit ${BURST + RATE * elapsedS} + 3 slices`);
    // The bucket was really used: well over half of what it allowed (shared 2-core machine).
    assert.ok(total >= 0.5 * RATE * RUN_MS / 1000, `spent only ${total}`);
    for (const s of spent) assert.ok(s > 0, `an instance got nothing: ${spent.join(", ")}`);
    const calls = quotas.reduce((n, q) => n + q.reservations, 0);
    assert.ok(calls < takes / 10, `${calls} reservations for ${takes} takes`);
    assert.ok(calls / elapsedS / 3 < 40, `${(calls / elapsedS / 3).toFixed(1)} reservations per second per instance`);
    for (const q of quotas) await q.dispose();
  });

  test("an idle lease is returned to the bucket; so is every lease on dispose", async () => {
    const clock = new ManualClock(1_000);
    const s = await store();
    // One unit per hour: nothing refills during the test, so the bucket shows exactly what was returned.
    const q = new LeasedQuota({ store: s, name: "idle", rate: 1, periodMs: 3_600_000, burst: 10_000, sliceMs: 3_600_000_000, idleMs: 200, clock });
    assert.equal(q.slice, 1000);
    assert.deepEqual(await q.take("k", 10), { granted: 10, retryAfterMs: 0 });
    assert.equal(await q.available("k"), 10_000 - 1000, "a whole slice is reserved in Redis");
    assert.equal(q.trySpend("k", 5), 5, "spent locally, no I/O");
    assert.equal(q.reservations, 1);
    clock.advance(199);
    assert.equal(q.held, 1);
    clock.advance(1);
    await waitUntil(async () => (await q.available("k")) === 10_000 - 15, { timeoutMs: 2000, message: "the idle lease returned" });
    assert.equal(q.held, 0);

    assert.equal((await q.take("a", 1)).granted, 1);
    assert.equal((await q.take("b", 1)).granted, 1);
    await q.dispose();
    assert.equal(await q.available("a"), 9_999);
    assert.equal(await q.available("b"), 9_999);
  });

  test("an empty bucket grants nothing and says how long to wait", async () => {
    const clock = new ManualClock(0);
    const q = new LeasedQuota({ store: await store(), name: "empty", rate: 10, burst: 10, sliceMs: 1000, clock });
    assert.equal((await q.take("k", 10)).granted, 10);
    // The slice is 10 units: nothing until a whole slice has refilled.
    assert.deepEqual(await q.take("k", 1), { granted: 0, retryAfterMs: 1000 });
    clock.advance(999);
    assert.deepEqual(await q.take("k", 1), { granted: 0, retryAfterMs: 1 });
    clock.advance(1);
    assert.deepEqual(await q.take("k", 5), { granted: 5, retryAfterMs: 0 });
    assert.equal(q.trySpend("k", 10), 5);
    await q.dispose();
  });
});
