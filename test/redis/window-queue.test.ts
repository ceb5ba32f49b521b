/**
 * The fixed-window queue of a limit whose counts live in Redis, held to the
 * memory queue's behaviour (test/unit/fixed-window-queue.test.ts): no
 * deadlock behind waiters, exact Retry-After, newest-first newcomers, peek,
 * shadow mode and clock regressions. Time is a ManualClock sent to Redis;
 * after moving it, a test waits (bounded) until the queue has no Redis call
 * in flight.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { AcquireAbortedError, type Decision, ManualClock, type QueueOrder } from "../../src/index.js";
import { RedisLimiterSet, RedisRateLimiter, RedisStore } from "../../src/redis.js";
import { REDIS_URL, deletePrefix, uniquePrefix } from "./helpers.js";
import { waitUntil, sleep } from "../helpers/wait.js";

const prefix = uniquePrefix("wq");
const store = new RedisStore({ url: REDIS_URL, prefix, timeoutMs: 2000 });
let names = 0;

before(async () => {
  assert.ok(await store.ready(), "Redis answers");
});

after(async () => {
  await store.close();
  await deletePrefix(prefix);
});

function queued(permitLimit: number, queueLimit: number, queueOrder: QueueOrder = "oldest_first", start = 0, clock = new ManualClock(start)) {
  const limiter = new RedisRateLimiter({ store, name: `q${names++}`, algorithm: "fixed_window", permitLimit, windowMs: 1000, queueLimit, queueOrder, clock });
  return { clock, limiter };
}

/** Lets every Redis call the queue started (drains, newcomers) finish and their continuations run. */
async function settled(l: RedisRateLimiter): Promise<void> {
  await new Promise<void>((r) => setImmediate(r));
  await waitUntil(() => l.queueIdle(), { timeoutMs: 5000, message: "the queue's Redis calls" });
  for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Records the order in which acquisitions settle. */
function track(order: string[], label: string, p: Promise<Decision>): Promise<Decision | Error> {
  return p.then(
    (d) => {
      order.push(`${label}:${d.allowed ? "ok" : d.reason}`);
      return d;
    },
    (e: Error) => {
      order.push(`${label}:${e instanceof AcquireAbortedError ? e.code : "error"}`);
      return e;
    },
  );
}

const answer = (d: Decision) => [d.allowed, d.reason, d.retryAfterMs];

describe("Redis fixed-window queue", () => {
  test("a permitCount larger than permitLimit behind waiters is insufficient capacity and never blocks the queue", { timeout: 10_000 }, async () => {
    const { clock, limiter } = queued(2, 5);
    await limiter.acquire("k", 2);
    const order: string[] = [];
    const first = track(order, "first", limiter.acquire("k", 1));
    await settled(limiter);
    const huge = await limiter.acquire("k", 3);
    assert.deepEqual(answer(huge), [false, "insufficient_capacity", 0]);
    assert.deepEqual(answer(await limiter.check("k", 3)), [false, "insufficient_capacity", 0]);
    const after = track(order, "after", limiter.acquire("k", 1));
    await settled(limiter);
    clock.advance(1000);
    await Promise.all([first, after]);
    assert.deepEqual(order, ["first:ok", "after:ok"]);
  });

  test("Retry-After of a check behind waiters accounts for how their costs pack into windows", { timeout: 10_000 }, async () => {
    const { clock, limiter } = queued(3, 4);
    await limiter.acquire("k", 3);
    const w1 = limiter.acquire("k", 2);
    await settled(limiter);
    const w2 = limiter.acquire("k", 2);
    await settled(limiter);
    // Window 1 admits the first 2 (1 permit left, too few for the second), window 2 the second 2, so a check of 2 fits in window 3.
    assert.deepEqual(answer(await limiter.check("k", 2)), [false, "rate_limited", 3000]);
    clock.advance(1000);
    await w1;
    await settled(limiter);
    clock.advance(1000);
    await w2;
    await settled(limiter);
    assert.equal((await limiter.check("k", 2)).allowed, false, "window 2 cannot take it");
    clock.advance(1000);
    assert.equal((await limiter.check("k", 2)).allowed, true, "waiting exactly Retry-After succeeds");
  });

  test("beyond queueLimit Retry-After is the time until the queue has room", { timeout: 10_000 }, async () => {
    const { clock, limiter } = queued(2, 2, "oldest_first", 400);
    await limiter.acquire("k");
    await limiter.acquire("k");
    const q1 = limiter.acquire("k");
    await settled(limiter);
    const q2 = limiter.acquire("k");
    await settled(limiter);
    const full = await limiter.acquire("k");
    // The next window admits both waiters, so from then on the queue has room.
    assert.deepEqual(answer(full), [false, "queue_full", 600]);
    clock.advance(599);
    assert.equal((await limiter.acquire("k")).reason, "queue_full", "1 ms before, the queue is still full");
    clock.advance(1);
    assert.equal((await q1).allowed, true);
    assert.equal((await q2).allowed, true);
    await settled(limiter);
    let done = false;
    const retried = limiter.acquire("k").then((d) => ((done = true), d));
    await settled(limiter);
    assert.equal(done, false, "the retried caller is queued, not rejected");
    clock.advance(1000);
    assert.equal((await retried).allowed, true);
  });

  test("a cost that can never queue gets a Retry-After after which it passes at once", async () => {
    const { clock, limiter } = queued(3, 1, "oldest_first", 100);
    await limiter.acquire("k", 3);
    assert.deepEqual(answer(await limiter.acquire("k", 2)), [false, "queue_full", 900]);
    clock.advance(899);
    assert.equal((await limiter.acquire("k", 2)).allowed, false);
    clock.advance(1);
    assert.equal((await limiter.acquire("k", 2)).allowed, true);
  });

  test("newest_first: a newcomer takes a free permit at once, ahead of a waiter that does not fit; peek and check agree", { timeout: 10_000 }, async () => {
    const { clock, limiter } = queued(4, 6, "newest_first");
    await limiter.acquire("k", 1);
    const order: string[] = [];
    const big = track(order, "big", limiter.acquire("k", 4));
    await settled(limiter);
    await track(order, "small", limiter.acquire("k", 1));
    assert.deepEqual(order, ["small:ok"], "admitted at once, not parked until the next window");
    assert.equal((await limiter.peek("k", 1)).allowed, true, "peek sees the free permit");
    assert.equal((await limiter.check("k", 1)).allowed, true, "a plain check takes a free permit too");
    assert.equal((await limiter.check("k", 1)).allowed, true);
    // The window is full now: behind the waiter of 4, a check of 1 fits only in the window after the next.
    const p = await limiter.peek("k", 1);
    assert.deepEqual(answer(p), [false, "rate_limited", 2000]);
    assert.deepEqual(answer(await limiter.check("k", 1)), answer(p));
    clock.advance(1000);
    await big;
    assert.deepEqual(order, ["small:ok", "big:ok"]);
  });

  test("peek answers what check would answer for a key with waiters", { timeout: 10_000 }, async () => {
    const { clock, limiter } = queued(3, 4, "oldest_first", 500);
    await limiter.acquire("k", 3);
    const w1 = limiter.acquire("k", 2);
    await settled(limiter);
    const w2 = limiter.acquire("k", 2);
    await settled(limiter);
    const p = await limiter.peek("k", 2);
    const c = await limiter.check("k", 2);
    assert.deepEqual(answer(p), [false, "rate_limited", 2500]);
    assert.deepEqual(answer(c), answer(p));
    clock.advance(500);
    await w1;
    clock.advance(1000);
    await w2;
  });

  test("a shadowed limit never makes a caller wait in its queue", async () => {
    const clock = new ManualClock(0);
    const l = new RedisRateLimiter({ store, name: `q${names++}`, algorithm: "fixed_window", permitLimit: 1, windowMs: 1000, queueLimit: 5, shadow: true, clock });
    assert.equal((await l.acquire("k")).allowed, true);
    let answered = false;
    const second = l.acquire("k").then((d) => ((answered = true), d));
    await sleep(300);
    assert.equal(answered, true, "answered at once, not queued");
    const d = await second;
    assert.deepEqual([d.allowed, d.shadowed, d.reason], [true, true, "rate_limited"]);
    assert.equal(clock.pendingTimers(), 0);
  });

  test("a waiter queued while the clock reads earlier than before is admitted at the boundary, with one timer", { timeout: 10_000 }, async () => {
    const clock = new CountingClock(999);
    const { limiter } = queued(1, 1, "oldest_first", 0, clock);
    await limiter.acquire("k");
    clock.set(-1e6); // the limit keeps counting from 999
    let fired = 0;
    const waiter = limiter.acquire("k").then((d) => ((fired += 1), d));
    await settled(limiter);
    assert.equal(clock.pendingTimers(), 1);
    clock.advance(1e6 + 999);
    await settled(limiter);
    assert.equal(fired, 0, "not before the window opens");
    clock.advance(1);
    assert.equal((await waiter).allowed, true);
    await settled(limiter);
    assert.equal(clock.pendingTimers(), 0);
    assert.equal(clock.timersSet, 1, "the queue timer aims at the boundary on the clock it runs on");
  });

  test("in a limiter set, a newest-first newcomer takes a free permit past the waiters; when full, Retry-After plays out the queue", { timeout: 10_000 }, async () => {
    const { clock, limiter } = queued(2, 2, "newest_first");
    const g = new RedisRateLimiter({ store, name: `q${names++}`, algorithm: "gcra", rate: 1, periodMs: 1e9, burst: 100, clock });
    const set = new RedisLimiterSet([g, limiter]);
    await limiter.acquire("k", 1);
    const big = limiter.acquire("k", 2);
    await settled(limiter);
    assert.equal((await set.check(["u", "k"])).allowed, true, "the free permit goes to the newcomer");
    const full = await set.check(["u", "k"]);
    assert.equal(full.rejectedBy, limiter.name);
    assert.equal(full.retryAfterMs, 2000, "the next window is the waiter's, this check fits in the one after");
    assert.equal((await g.peek("u")).remaining, 99, "the rejected check charged nothing");
    clock.advance(1000);
    assert.equal((await big).allowed, true);
  });
});

class CountingClock extends ManualClock {
  timersSet = 0;
  override setTimer(fn: () => void, ms: number) {
    this.timersSet++;
    return super.setTimer(fn, ms);
  }
}
