/**
 * The store-failure modes, written once in the limiter layer, against a
 * store that fails on demand: insurance (a local limit with the capacity
 * divided by the expected instances, until the store answers again), open
 * and closed (`store_unavailable`), for every limiter kind.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConcurrencyLimiter, type FailureMode, LimiterSet, ManualClock, PenaltyBox, createLimiter } from "../../src/index.js";
import { FailingStore } from "../helpers/failing-store.js";

function rate(mode: FailureMode, o: { shadow?: boolean } = {}) {
  const store = new FailingStore(mode, 2, 250);
  const clock = new ManualClock(0);
  const limiter = createLimiter({ algorithm: "fixed_window", permitLimit: 4, windowMs: 1000, name: "r", store, clock, ...o });
  return { store, clock, limiter };
}

describe("failure modes: rate limits", () => {
  test("insurance: the local limit has the capacity divided by the instances; the store's own state is untouched; back on the store when it answers", async () => {
    const { store, limiter } = rate("insurance");
    assert.equal((await limiter.check("k")).allowed, true, "from the store");
    store.down = true;
    const local = [];
    for (let i = 0; i < 3; i++) local.push(await limiter.check("k"));
    assert.deepEqual(
      local.map((d) => [d.allowed, d.limit, d.reason]),
      [
        [true, 4, undefined],
        [true, 4, undefined],
        [false, 4, "rate_limited"],
      ],
      "4 / 2 instances = 2 local permits; decisions report the real limit",
    );
    assert.equal(store.fallbacks, 3);
    assert.equal((await limiter.peek("k")).allowed, false, "peek asks the insurance limit too");
    store.down = false;
    const back = await limiter.check("k");
    assert.deepEqual([back.allowed, back.remaining], [true, 2], "the store's count went on from 1, as if the outage never charged it");
    assert.equal(store.fallbacks, 4, "nothing more falls back once the store answers");
  });

  test("open: allowed with the full limit remaining", async () => {
    const { store, limiter } = rate("open");
    store.down = true;
    for (let i = 0; i < 6; i++) {
      const d = await limiter.check("k");
      assert.deepEqual([d.allowed, d.remaining, d.nearLimit], [true, 4, false]);
    }
    assert.equal(await limiter.allow("k"), true);
  });

  test("closed: store_unavailable with Retry-After = the probe interval; in shadow mode reported but let through", async () => {
    const { store, limiter } = rate("closed");
    store.down = true;
    const d = await limiter.check("k");
    assert.deepEqual([d.allowed, d.reason, d.retryAfterMs, d.resetMs, d.remaining, d.nearLimit], [false, "store_unavailable", 250, 250, 0, true]);
    assert.equal(await limiter.allow("k"), false);
    const s = rate("closed", { shadow: true });
    s.store.down = true;
    const sd = await s.limiter.check("k");
    assert.deepEqual([sd.allowed, sd.shadowed, sd.reason, sd.retryAfterMs], [true, true, "store_unavailable", 0]);
  });

  test("a queued acquire while the store is down is answered by the failure mode", async () => {
    const store = new FailingStore("closed");
    const l = createLimiter({ algorithm: "fixed_window", permitLimit: 1, windowMs: 1000, queueLimit: 2, name: "q", store, clock: new ManualClock(0) });
    store.down = true;
    const d = await l.acquire("k");
    assert.deepEqual([d.allowed, d.reason], [false, "store_unavailable"], "store_unavailable is not a reason to queue");
    l.dispose();
  });
});

describe("failure modes: limiter sets", () => {
  test("insurance keeps all-or-nothing and names the limit by its own name", async () => {
    const store = new FailingStore("insurance");
    const clock = new ManualClock(0);
    const a = createLimiter({ algorithm: "fixed_window", permitLimit: 10, windowMs: 1000, name: "a", store, clock });
    const b = createLimiter({ algorithm: "fixed_window", permitLimit: 2, windowMs: 1000, name: "b", store, clock });
    const set = new LimiterSet([a, b]);
    store.down = true;
    assert.equal((await set.check(["x", "y"])).allowed, true, "b's insurance: 1 permit");
    const r = await set.check(["x", "y"]);
    assert.deepEqual([r.allowed, r.rejectedBy], [false, "b"]);
    store.down = false;
    assert.equal((await a.peek("x")).remaining, 10, "the store was never charged");
    // a's insurance (5 permits) gave 1 to the allowed check and nothing to the rejected one.
    store.down = true;
    const left = [];
    for (let i = 0; i < 5; i++) left.push((await a.check("x")).allowed);
    assert.deepEqual(left, [true, true, true, true, false]);
  });

  test("closed: the first limit rejects with store_unavailable, nothing is charged", async () => {
    const store = new FailingStore("closed");
    const clock = new ManualClock(0);
    const set = new LimiterSet([
      createLimiter({ algorithm: "gcra", rate: 5, name: "a", store, clock }),
      createLimiter({ algorithm: "gcra", rate: 5, name: "b", store, clock }),
    ]);
    store.down = true;
    const r = await set.check(["x", "y"]);
    assert.deepEqual([r.allowed, r.rejectedBy, r.retryAfterMs, r.decisions[0]!.reason], [false, "a", 250, "store_unavailable"]);
  });
});

describe("failure modes: concurrency limits", () => {
  test("insurance: local leases with the limit divided; released locally; nearLimitRatio honoured", async () => {
    const store = new FailingStore("insurance");
    const c = new ConcurrencyLimiter({ limit: 4, name: "c", store, clock: new ManualClock(0), nearLimitRatio: 0.5 });
    store.down = true;
    const a = await c.tryAcquire("k");
    const b = await c.tryAcquire("k");
    const full = await c.tryAcquire("k");
    assert.deepEqual([a.decision.allowed, b.decision.allowed, full.decision.allowed, full.decision.reason], [true, true, false, "concurrency_limit"]);
    assert.match(String(a.lease!.id), /^local:/);
    assert.deepEqual([a.decision.remaining, a.decision.limit, a.decision.nearLimit], [1, 4, true], "remaining is what the insurance has left, near against the real limit (4 × 0.5)");
    await a.lease!.release();
    assert.equal((await c.tryAcquire("k")).decision.allowed, true, "a released local lease frees its local slot");
    store.down = false;
    assert.equal(await c.held("k"), 0, "the store holds none of the local leases");
  });

  test("open gives a lease that holds nothing; closed rejects with store_unavailable", async () => {
    const open = new FailingStore("open");
    const o = new ConcurrencyLimiter({ limit: 1, name: "o", store: open, clock: new ManualClock(0) });
    open.down = true;
    const r1 = await o.tryAcquire("k");
    const r2 = await o.tryAcquire("k");
    assert.deepEqual([r1.decision.allowed, r2.decision.allowed, r1.lease?.id], [true, true, "open"]);
    await r1.lease!.release();
    const closed = new FailingStore("closed");
    const c = new ConcurrencyLimiter({ limit: 1, name: "c", store: closed, clock: new ManualClock(0) });
    closed.down = true;
    const r = await c.tryAcquire("k");
    assert.deepEqual([r.decision.allowed, r.decision.reason, r.decision.retryAfterMs, r.lease], [false, "store_unavailable", 250, undefined]);
  });
});

describe("failure modes: penalty boxes", () => {
  test("records are kept in a local box while the store is down; checks follow the failure mode", async () => {
    const store = new FailingStore("insurance");
    const clock = new ManualClock(10_000);
    const box = new PenaltyBox({ name: "p", store, clock, banFailures: 2, throttleAfter: 100, banDurationMs: 5000 });
    store.down = true;
    await box.recordFailure("k");
    const r = await box.recordFailure("k");
    assert.equal(r.banned, true, "the local box bans");
    const d = await box.check("k");
    assert.deepEqual([d.allowed, d.reason, d.retryAfterMs], [false, "banned", 5000]);
    assert.equal(box.isBanned("k"), true, "the local ban counts without I/O");
    assert.deepEqual((await box.banned()).map((b) => b.key), ["k"]);
    store.down = false;
    assert.equal((await box.check("k")).allowed, true, "the store never heard of it");
    assert.equal(await box.forget("k"), true, "forgetting clears the local record too");
    assert.equal(box.isBanned("k"), false);
  });

  test("closed: a check is store_unavailable; open: allowed", async () => {
    const closed = new FailingStore("closed");
    const c = new PenaltyBox({ name: "c", store: closed, clock: new ManualClock(0) });
    closed.down = true;
    const d = await c.check("k");
    assert.deepEqual([d.allowed, d.reason, d.retryAfterMs], [false, "store_unavailable", 250]);
    const open = new FailingStore("open");
    const o = new PenaltyBox({ name: "o", store: open, clock: new ManualClock(0) });
    open.down = true;
    assert.equal((await o.check("k")).allowed, true);
  });
});
