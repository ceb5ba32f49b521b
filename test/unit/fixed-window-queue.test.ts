import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AcquireAbortedError, type Decision, ManualClock, MemoryStore, type QueueOrder, createLimiter } from "../../src/index.js";

function queued(permitLimit: number, queueLimit: number, queueOrder: QueueOrder = "oldest_first", start = 0) {
  const clock = new ManualClock(start);
  const limiter = createLimiter({ algorithm: "fixed_window", permitLimit, windowMs: 1000, queueLimit, queueOrder, clock, store: new MemoryStore() });
  return { clock, limiter };
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

const flush = () => new Promise<void>((r) => setImmediate(r));

describe("fixed window queue", () => {
  test("waiters are admitted oldest first when the next window opens", async () => {
    const { clock, limiter } = queued(2, 3);
    const order: string[] = [];
    await track(order, "a", limiter.acquire("k"));
    await track(order, "b", limiter.acquire("k"));
    const waiting = ["c", "d", "e"].map((l) => track(order, l, limiter.acquire("k")));
    await flush();
    assert.deepEqual(order, ["a:ok", "b:ok"], "nobody is admitted before the window opens");
    clock.advance(1000);
    await flush();
    assert.deepEqual(order, ["a:ok", "b:ok", "c:ok", "d:ok"]);
    clock.advance(1000);
    await Promise.all(waiting);
    assert.deepEqual(order, ["a:ok", "b:ok", "c:ok", "d:ok", "e:ok"]);
  });

  test("beyond queueLimit a caller is rejected at once with queue_full and Retry-After = time to the next window", async () => {
    const { clock, limiter } = queued(2, 2, "oldest_first", 400);
    await limiter.acquire("k");
    await limiter.acquire("k");
    const q1 = limiter.acquire("k");
    const q2 = limiter.acquire("k");
    const full = await limiter.acquire("k");
    assert.equal(full.allowed, false);
    assert.equal(full.reason, "queue_full");
    // The next window admits both waiters, so from then on the queue has room: Retry-After is the time to it.
    assert.equal(full.retryAfterMs, 600);
    clock.advance(599);
    const early = await limiter.acquire("k");
    assert.equal(early.reason, "queue_full", "1 ms before, the queue is still full");
    clock.advance(1);
    assert.equal((await q1).allowed, true);
    assert.equal((await q2).allowed, true);
    const retried = limiter.acquire("k");
    let settled = false;
    void retried.then(() => (settled = true));
    await flush();
    assert.equal(settled, false, "the retried caller is queued, not rejected");
    clock.advance(1000);
    assert.equal((await retried).allowed, true);
  });

  test("Retry-After of a check behind waiters accounts for how their costs pack into windows", async () => {
    const { clock, limiter } = queued(3, 4);
    await limiter.acquire("k", 3);
    const w1 = limiter.acquire("k", 2);
    const w2 = limiter.acquire("k", 2);
    // Window 1 admits the first 2 (1 permit left, too few for the second), window 2 the second 2
    // (again 1 left), so a check of 2 first fits in window 3.
    const d = limiter.check("k", 2);
    assert.equal(d.reason, "rate_limited");
    assert.equal(d.retryAfterMs, 3000);
    clock.advance(1000);
    await w1;
    clock.advance(1000);
    await w2;
    assert.equal(limiter.check("k", 2).allowed, false, "window 2 cannot take it");
    clock.advance(1000);
    assert.equal(limiter.check("k", 2).allowed, true, "waiting exactly Retry-After succeeds");
  });

  test("a check behind waiters that fits after them in the same window waits only for that window", async () => {
    const { clock, limiter } = queued(4, 4, "oldest_first", 250);
    await limiter.acquire("k", 4);
    const w = limiter.acquire("k", 1);
    const d = limiter.check("k", 3);
    assert.equal(d.retryAfterMs, 750);
    clock.advance(750);
    await w;
    assert.equal(limiter.check("k", 3).allowed, true);
  });

  test("a newcomer never jumps a queued waiter, even when a permit is free", async () => {
    const { clock, limiter } = queued(2, 4);
    await limiter.acquire("k", 2);
    const order: string[] = [];
    const big = track(order, "big", limiter.acquire("k", 2));
    clock.advance(1000);
    await big;
    // The window that just opened had room for 2: the waiter took both.
    const small = limiter.check("k");
    assert.equal(small.allowed, false);
    const bigger = track(order, "w1", limiter.acquire("k", 2));
    const check = limiter.check("k");
    assert.equal(check.allowed, false, "a plain check may not pass queued waiters");
    assert.equal(check.reason, "rate_limited");
    assert.equal(check.retryAfterMs, 2000, "one window for the waiter, the next for this check");
    clock.advance(1000);
    await bigger;
    assert.deepEqual(order, ["big:ok", "w1:ok"]);
  });

  test("a queued caller cancelled with an AbortSignal leaves the queue and the next one moves up", async () => {
    const { clock, limiter } = queued(1, 3);
    await limiter.acquire("k");
    const order: string[] = [];
    const ac = new AbortController();
    const first = track(order, "first", limiter.acquire("k", 1, { signal: ac.signal }));
    const second = track(order, "second", limiter.acquire("k"));
    ac.abort();
    await first;
    assert.deepEqual(order, ["first:aborted"]);
    clock.advance(1000);
    await second;
    assert.deepEqual(order, ["first:aborted", "second:ok"]);
  });

  test("an already aborted signal is refused before queueing", async () => {
    const { limiter } = queued(1, 3);
    await limiter.acquire("k");
    await assert.rejects(limiter.acquire("k", 1, { signal: AbortSignal.abort() }), AcquireAbortedError);
  });

  test("newest_first admits the newest waiter first and drops the oldest when the queue is full", async () => {
    const { clock, limiter } = queued(1, 2, "newest_first");
    await limiter.acquire("k");
    const order: string[] = [];
    const a = track(order, "a", limiter.acquire("k"));
    const b = track(order, "b", limiter.acquire("k"));
    const c = track(order, "c", limiter.acquire("k"));
    await a;
    assert.deepEqual(order, ["a:queue_full"], "the oldest waiter gives way to the newcomer");
    clock.advance(1000);
    await c;
    assert.deepEqual(order, ["a:queue_full", "c:ok"]);
    clock.advance(1000);
    await b;
    assert.deepEqual(order, ["a:queue_full", "c:ok", "b:ok"]);
  });

  test("newest_first: a newcomer is the newest caller and takes a free permit at once, ahead of a waiter that does not fit", async () => {
    const { clock, limiter } = queued(4, 6, "newest_first");
    await limiter.acquire("k", 1);
    const order: string[] = [];
    const big = track(order, "big", limiter.acquire("k", 4));
    const small = track(order, "small", limiter.acquire("k", 1));
    await small;
    assert.deepEqual(order, ["small:ok"], "admitted at once, not parked until someone else touches the key");
    assert.equal(limiter.check("k", 1).allowed, true, "a plain check takes a free permit too");
    clock.advance(1000);
    await big;
    assert.deepEqual(order, ["small:ok", "big:ok"]);
  });

  test("peek answers what check would answer for a key with waiters", async () => {
    const { limiter } = queued(2, 4, "oldest_first", 500);
    await limiter.acquire("k", 2);
    const waiter = limiter.acquire("k", 1);
    const p = limiter.peek("k", 1);
    const c = limiter.check("k", 1);
    assert.deepEqual([p.allowed, p.reason, p.retryAfterMs], [false, "rate_limited", 500]);
    assert.deepEqual([c.allowed, c.reason, c.retryAfterMs], [p.allowed, p.reason, p.retryAfterMs]);
    limiter.dispose();
    await assert.rejects(waiter, AcquireAbortedError);
  });

  test("the number of keys with waiters is bounded: beyond it a newcomer key gets queue_full", async () => {
    const { clock, limiter } = queued(1, 1);
    const waiting: Promise<unknown>[] = [];
    for (let i = 0; i < 10_000; i++) {
      await limiter.acquire(`k${i}`);
      waiting.push(limiter.acquire(`k${i}`));
    }
    await limiter.acquire("one-more");
    const d = await limiter.acquire("one-more");
    assert.equal(d.reason, "queue_full");
    assert.equal(d.retryAfterMs, 1000);
    clock.advance(1000);
    const admitted = await Promise.all(waiting);
    assert.equal(admitted.length, 10_000);
  });

  test("disposing the limiter fails every waiter and refuses new acquisitions", async () => {
    const { clock, limiter } = queued(1, 3);
    await limiter.acquire("k");
    const order: string[] = [];
    const waiting = [track(order, "x", limiter.acquire("k")), track(order, "y", limiter.acquire("fresh-key"))];
    limiter.dispose();
    await Promise.all(waiting);
    assert.deepEqual(order.sort(), ["x:disposed", "y:ok"].sort());
    assert.equal(clock.pendingTimers(), 0, "dispose stops the limit's timer");
    await assert.rejects(limiter.acquire("k"), (e: unknown) => e instanceof AcquireAbortedError && e.code === "disposed");
  });

  test("a permitCount larger than permitLimit is insufficient capacity, never queued", async () => {
    const { limiter } = queued(2, 5);
    const d = await limiter.acquire("k", 3);
    assert.equal(d.reason, "insufficient_capacity");
    assert.equal(d.retryAfterMs, 0);
  });

  test("a permitCount larger than permitLimit behind waiters is insufficient capacity and never blocks the queue", async () => {
    const { clock, limiter } = queued(2, 5);
    await limiter.acquire("k", 2);
    const order: string[] = [];
    const first = track(order, "first", limiter.acquire("k", 1));
    const huge = await limiter.acquire("k", 3);
    assert.equal(huge.reason, "insufficient_capacity");
    assert.equal(huge.retryAfterMs, 0);
    const check = limiter.check("k", 3);
    assert.deepEqual([check.allowed, check.reason, check.retryAfterMs], [false, "insufficient_capacity", 0]);
    const after = track(order, "after", limiter.acquire("k", 1));
    clock.advance(1000);
    await Promise.all([first, after]);
    assert.deepEqual(order, ["first:ok", "after:ok"]);
  });

  test("a cost larger than queueLimit is rejected with queue_full, not queued", async () => {
    const { clock, limiter } = queued(3, 1);
    await limiter.acquire("k", 3);
    const d = await limiter.acquire("k", 2);
    assert.equal(d.reason, "queue_full");
    assert.equal(clock.pendingTimers(), 0);
  });

  test("a cost that can never queue gets a Retry-After after which it passes at once", async () => {
    const { clock, limiter } = queued(3, 1, "oldest_first", 100);
    await limiter.acquire("k", 3);
    const full = await limiter.acquire("k", 2);
    assert.equal(full.reason, "queue_full");
    assert.equal(full.retryAfterMs, 900);
    clock.advance(899);
    assert.equal((await limiter.acquire("k", 2)).allowed, false);
    clock.advance(1);
    assert.equal((await limiter.acquire("k", 2)).allowed, true);
  });
});
