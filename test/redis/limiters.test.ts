import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { Redis } from "ioredis";
import { ManualClock, createLimiter } from "../../src/index.js";
import { RedisConcurrencyLimiter, RedisLimiterSet, RedisRateLimiter, RedisStore, type RedisStoreOptions } from "../../src/redis.js";
import { REDIS_URL, ThrowawayRedis, deletePrefix, queueAcrossTwoInstances, uniquePrefix } from "./helpers.js";

const prefix = uniquePrefix("lim");
const stores: RedisStore[] = [];
const admin = new Redis(REDIS_URL);

async function store(o: RedisStoreOptions = {}): Promise<RedisStore> {
  const s = new RedisStore({ url: REDIS_URL, prefix, timeoutMs: 2000, ...o });
  stores.push(s);
  assert.ok(await s.ready());
  return s;
}

after(async () => {
  for (const s of stores) await s.close();
  admin.disconnect();
  await deletePrefix(prefix);
});

const tick = () => new Promise((r) => setTimeout(r, 30));

describe("RedisRateLimiter", () => {
  test("shadow mode and nearLimit answer like the memory limiter", async () => {
    const s = await store();
    const clock = new ManualClock(0);
    const opts = { algorithm: "fixed_window" as const, permitLimit: 5, windowMs: 1000, shadow: true, nearLimitRatio: 0.4, clock };
    const r = new RedisRateLimiter({ ...opts, store: s, name: "shadow" });
    const m = createLimiter({ ...opts, name: "shadow" });
    for (let i = 0; i < 7; i++) assert.deepEqual(await r.check("k"), m.check("k"), `check ${i}`);
    const d = await r.check("k");
    assert.equal(d.allowed, true);
    assert.equal(d.shadowed, true);
    assert.equal(d.reason, "rate_limited");
  });

  test("peek does not consume; reset forgets the key in Redis", async () => {
    const s = await store();
    const r = new RedisRateLimiter({ store: s, name: "peek", algorithm: "gcra", rate: 1, periodMs: 60_000, burst: 2 });
    assert.equal((await r.peek("k")).remaining, 2);
    assert.equal((await r.check("k")).remaining, 1);
    assert.equal((await r.peek("k")).remaining, 1);
    assert.equal((await r.check("k")).remaining, 0);
    assert.equal((await r.check("k")).allowed, false);
    await r.reset("k");
    assert.equal(await admin.exists(r.redisKey("k")), 0);
    assert.equal((await r.check("k")).allowed, true);
  });

  test("keys carry a TTL that ends no sooner than their state reads as fresh, and at most one floor (1 s) later", async () => {
    const s = await store();
    const g = new RedisRateLimiter({ store: s, name: "ttl-g", algorithm: "gcra", rate: 1, periodMs: 10_000, burst: 5 });
    await g.check("k", 3); // 3 units of 10 s each ahead of now
    const gt = await admin.pttl(g.redisKey("k"));
    assert.ok(gt > 30_000 && gt <= 31_001, `gcra pttl ${gt}`);
    const f = new RedisRateLimiter({ store: s, name: "ttl-f", algorithm: "fixed_window", permitLimit: 5, windowMs: 1000 });
    await f.check("k");
    const ft = await admin.pttl(f.redisKey("k"));
    assert.ok(ft > 1000 && ft <= 2001, `fixed window pttl ${ft}`);
    const w = new RedisRateLimiter({ store: s, name: "ttl-s", algorithm: "sliding_window", limit: 5, windowMs: 5000 });
    await w.check("k");
    const wt = await admin.pttl(w.redisKey("k"));
    assert.ok(wt > 6000 && wt <= 11_001, `sliding window pttl ${wt}`);
  });

  test("a write whose expiry is still covered keeps the key's TTL; one that needs a later expiry moves it", async () => {
    const s = await store();
    // The expiry the key was given is the value's last double; Redis's own expiry must match it.
    const expiry = async (key: string): Promise<{ stored: number; actual: number }> => {
      const raw = await admin.getBuffer(key);
      assert.ok(raw !== null);
      const [[, [sec, usec]], [, pttl]] = (await admin.multi().time().pttl(key).exec()) as [[null, [string, string]], [null, number]];
      return { stored: raw.readDoubleLE(raw.length - 8), actual: Number(sec) * 1000 + Number(usec) / 1000 + pttl };
    };
    // Both checks fall in one hour-long window; 5 s later the state needs an earlier expiry than the key has.
    const clock = new ManualClock(0);
    const f = new RedisRateLimiter({ store: s, name: "keep-f", algorithm: "fixed_window", permitLimit: 5, windowMs: 3_600_000, clock });
    await f.check("k");
    const first = await expiry(f.redisKey("k"));
    assert.ok(Math.abs(first.actual - first.stored) <= 2, `stored ${first.stored} vs Redis ${first.actual}`);
    clock.advance(5000);
    await f.check("k");
    const second = await expiry(f.redisKey("k"));
    assert.equal(second.stored, first.stored, "the second write kept the expiry");
    assert.ok(Math.abs(second.actual - first.stored) <= 2, "and Redis's TTL was not replaced");
    // GCRA: 3 more units of 10 s need 30 s more than the expiry the key has.
    const g = new RedisRateLimiter({ store: s, name: "keep-g", algorithm: "gcra", rate: 1, periodMs: 10_000, burst: 5 });
    await g.check("k");
    const before = await expiry(g.redisKey("k"));
    await g.check("k", 3);
    const moved = await expiry(g.redisKey("k"));
    assert.ok(moved.stored >= before.stored + 29_000, `moved ${moved.stored - before.stored} ms`);
    assert.ok(Math.abs(moved.actual - moved.stored) <= 2);
    const pttl = await admin.pttl(g.redisKey("k"));
    assert.ok(pttl > 40_000 && pttl <= 41_001, `gcra pttl ${pttl}`);
  });

  test("a state stored without its expiry (the earlier format) still loads, and is rewritten with one", async () => {
    const s = await store();
    const clock = new ManualClock(1000);
    const g = new RedisRateLimiter({ store: s, name: "old-format", algorithm: "gcra", rate: 1, periodMs: 10_000, burst: 5, clock });
    // Tag 'G', debt 20 s (two units) as of clock reading 1000.
    const old = Buffer.alloc(17);
    old.writeUInt8(71, 0);
    old.writeDoubleLE(20_000, 1);
    old.writeDoubleLE(1000, 9);
    await admin.set(g.redisKey("k"), old);
    assert.equal((await g.check("k")).remaining, 2, "three units owed of five; a fresh key would leave four");
    const raw = await admin.getBuffer(g.redisKey("k"));
    assert.equal(raw?.length, 25);
    assert.ok((await admin.pttl(g.redisKey("k"))) > 600_000, "an injected clock's floor of 10 minutes");
  });

  test("a stored value of another shape reads as a fresh key and does not fail the store", async () => {
    const s = await store();
    const r = new RedisRateLimiter({ store: s, name: "shape", algorithm: "gcra", rate: 1, periodMs: 60_000, burst: 3 });
    await admin.set(r.redisKey("old"), "12345.5"); // one number: a state of another width
    await admin.set(r.redisKey("junk"), "not a state at all");
    await admin.hset(r.redisKey("hash"), "f", "v"); // another type entirely
    // A packed state of another algorithm: fixed window's tag, window start 0, count 1e9.
    const foreign = Buffer.alloc(17);
    foreign.writeUInt8(70, 0);
    foreign.writeDoubleLE(0, 1);
    foreign.writeDoubleLE(1e9, 9);
    await admin.set(r.redisKey("fixed"), foreign);
    // The text form older versions wrote: debt 1e9 ms owed.
    await admin.set(r.redisKey("text"), "1000000000 0");
    for (const k of ["old", "junk", "hash", "fixed", "text"]) assert.equal((await r.check(k)).remaining, 2, k);
    // And its own packed state is read back: the next check sees the first.
    assert.equal((await r.check("old")).remaining, 1);
    assert.equal(s.mode, "redis");
    assert.equal(s.counters.fallbackDecisions, 0);
  });

  test("without an injected clock, Redis TIME decides where windows start", async () => {
    const s = await store();
    const W = 1_000_000;
    const f = new RedisRateLimiter({ store: s, name: "time", algorithm: "fixed_window", permitLimit: 5, windowMs: W });
    const [sec, usec] = await admin.time();
    const redisNow = Number(sec) * 1000 + Number(usec) / 1000;
    const d = await f.check("k");
    const expected = W - (redisNow % W);
    assert.ok(Math.abs(d.resetMs - expected) < 500, `resetMs ${d.resetMs}, window end by Redis TIME in ${expected}`);
  });

  test("checks of one tick go to Redis as one script call, split by maxBatch", async () => {
    const server = await ThrowawayRedis.create();
    const s = new RedisStore({ url: server.url, prefix, timeoutMs: 2000, maxBatch: 50 });
    const a = new Redis(server.url);
    try {
      assert.ok(await s.ready());
      const r = new RedisRateLimiter({ store: s, name: "batch", algorithm: "gcra", rate: 1, periodMs: 1e9, burst: 150 });
      const calls = async () => Number(/cmdstat_evalsha:calls=(\d+)/.exec(await a.info("commandstats"))?.[1] ?? 0);
      await r.check("warm"); // loads the script (NOSCRIPT then EVAL)
      await a.config("RESETSTAT");
      const ds = await Promise.all(Array.from({ length: 40 }, (_, i) => r.check(`k${i % 3}`)));
      assert.equal(ds.filter((d) => d.allowed).length, 40);
      assert.equal(await calls(), 1, "40 checks, one EVALSHA");
      await a.config("RESETSTAT");
      const more = await Promise.all(Array.from({ length: 200 }, () => r.check("hot")));
      assert.equal(more.filter((d) => d.allowed).length, 150, "the batch applies operations on one key in order");
      assert.equal(await calls(), 4, "200 checks with maxBatch 50: four calls");
      await a.config("RESETSTAT");
      const spread = await Promise.all(Array.from({ length: 40 }, (_, i) => r.check(`d${i}`)));
      assert.equal(spread.filter((d) => d.allowed).length, 40);
      assert.equal(await calls(), 1, "40 distinct keys with maxBatch 50: one call");
      // The default batch: 32 operations per call.
      const d = new RedisStore({ url: server.url, prefix, timeoutMs: 2000 });
      try {
        assert.ok(await d.ready());
        const rd = new RedisRateLimiter({ store: d, name: "batch-default", algorithm: "gcra", rate: 1, periodMs: 1e9, burst: 150 });
        await rd.check("warm");
        await a.config("RESETSTAT");
        const ops = await Promise.all(Array.from({ length: 70 }, (_, i) => rd.check(`e${i % 5}`)));
        assert.equal(ops.filter((x) => x.allowed).length, 70);
        assert.equal(await calls(), 3, "70 checks with the default maxBatch 32: three calls");
      } finally {
        await d.close();
      }
    } finally {
      a.disconnect();
      await s.close();
      await server.kill();
    }
  });
});

describe("fixed-window queue across instances", () => {
  test("waiters queued on two instances are admitted at most permitLimit per window in total", async () => {
    const clock = new ManualClock(0);
    const opts = { algorithm: "fixed_window" as const, permitLimit: 3, windowMs: 1000, queueLimit: 6, name: "queue", clock };
    const a = new RedisRateLimiter({ ...opts, store: await store() });
    const b = new RedisRateLimiter({ ...opts, store: await store() });
    await queueAcrossTwoInstances(a, b, clock);
  });

  test("an aborted waiter leaves the queue; dispose fails the rest", async () => {
    const clock = new ManualClock(0);
    const l = new RedisRateLimiter({ store: await store(), name: "abort", algorithm: "fixed_window", permitLimit: 1, windowMs: 1000, queueLimit: 5, clock });
    assert.equal((await l.acquire("k")).allowed, true);
    const ac = new AbortController();
    const aborted = l.acquire("k", 1, { signal: ac.signal });
    const disposed = l.acquire("k");
    await tick();
    ac.abort();
    await assert.rejects(aborted, { code: "aborted" });
    l.dispose();
    await assert.rejects(disposed, { code: "disposed" });
  });
});

describe("refunds (the composite check's give-back on Cluster)", () => {
  test("a refund gives back what a check took, on every algorithm, and nothing of a window that has moved on", async () => {
    const s = await store();
    const clock = new ManualClock(10_000);
    const shapes = [
      { name: "give-g", algorithm: "gcra" as const, rate: 4, periodMs: 1000, burst: 4 },
      { name: "give-f", algorithm: "fixed_window" as const, permitLimit: 4, windowMs: 1000 },
      { name: "give-s", algorithm: "sliding_window" as const, limit: 4, windowMs: 1000 },
    ];
    for (const shape of shapes) {
      const l = new RedisRateLimiter({ ...shape, store: s, clock });
      assert.equal((await l.check("k", 3)).remaining, 1, shape.algorithm);
      await l.refund("k", 2);
      assert.equal((await l.peek("k")).remaining, 3, `${shape.algorithm}: two of three given back`);
      await l.refund("k", 5);
      assert.equal((await l.peek("k")).remaining, 4, `${shape.algorithm}: never more than was taken`);
      assert.equal((await l.check("k", 4)).allowed, true, shape.algorithm);
    }
    // A sliding window that rolled since the charge: the charge now counts in the previous window, and is given back there.
    const w = new RedisRateLimiter({ ...shapes[2]!, name: "give-s2", store: s, clock });
    clock.advance(1000 - (clock.now() % 1000));
    await w.check("k", 4);
    clock.advance(1000);
    assert.equal((await w.peek("k")).remaining, 0, "the previous window's 4 still count in full at its end");
    await w.refund("k", 2);
    assert.equal((await w.peek("k")).remaining, 2);
    assert.equal(s.counters.fallbackDecisions, 0);
  });
});

describe("RedisLimiterSet", () => {
  test("one call charges every limit or none", async () => {
    const s = await store();
    const clock = new ManualClock(0);
    const perIp = new RedisRateLimiter({ store: s, name: "set-ip", algorithm: "fixed_window", permitLimit: 2, windowMs: 1000, clock });
    const global = new RedisRateLimiter({ store: s, name: "set-global", algorithm: "gcra", rate: 1, periodMs: 1e9, burst: 100, clock });
    const set = new RedisLimiterSet([perIp, global]);
    assert.equal((await set.check(["1.1.1.1", "all"])).allowed, true);
    assert.equal((await set.check(["1.1.1.1", "all"])).allowed, true);
    const d = await set.check(["1.1.1.1", "all"]);
    assert.equal(d.allowed, false);
    assert.equal(d.rejectedBy, "set-ip");
    assert.equal(d.retryAfterMs, 1000);
    assert.equal(d.decisions.length, 1);
    assert.equal((await global.peek("all")).remaining, 98, "the rejected request charged nothing");
    const other = await set.check(["2.2.2.2", "all"], 3);
    assert.equal(other.allowed, false, "cost 3 exceeds the per-IP limit");
    assert.equal(other.decisions[0]!.reason, "insufficient_capacity");
    assert.equal((await global.peek("all")).remaining, 98);
  });
});

describe("RedisConcurrencyLimiter", () => {
  test("leases are shared across instances, released, renewed and expire", async () => {
    const clock = new ManualClock(0);
    const opts = { name: "conc", limit: 2, leaseTtlMs: 1000, clock };
    const a = new RedisConcurrencyLimiter({ ...opts, store: await store() });
    const b = new RedisConcurrencyLimiter({ ...opts, store: await store() });
    const l1 = await a.tryAcquire("ip");
    const l2 = await b.tryAcquire("ip");
    assert.equal(l1.decision.allowed && l2.decision.allowed, true);
    assert.equal(l2.decision.remaining, 0);
    const full = await a.tryAcquire("ip");
    assert.equal(full.decision.allowed, false);
    assert.equal(full.decision.reason, "concurrency_limit");
    assert.equal(full.decision.retryAfterMs, 1000);
    assert.equal(full.lease, undefined);
    await l1.lease!.release();
    await l1.lease!.release(); // idempotent
    assert.equal(await b.held("ip"), 1);
    const l3 = await b.tryAcquire("ip");
    assert.equal(l3.decision.allowed, true);
    clock.advance(600);
    assert.equal(await l3.lease!.renew(), true);
    clock.advance(600);
    // l2 (not renewed) expired at 1000; l3 was renewed to 1600.
    assert.equal(await a.held("ip"), 1);
    assert.equal(await l2.lease!.renew(), false);
    clock.advance(1000);
    assert.equal(await a.held("ip"), 0);
  });
});
