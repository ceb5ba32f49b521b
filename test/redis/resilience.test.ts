import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Redis } from "ioredis";
import {
  type FailureMode,
  LeasedQuota,
  RedisConcurrencyLimiter,
  RedisLimiterSet,
  RedisPenaltyBox,
  RedisRateLimiter,
  RedisStore,
  type StoreMode,
} from "../../src/redis.js";
import { RATE_SCRIPT } from "../../src/stores/redis/scripts/rate.js";
import { ThrowawayRedis, UnhandledRejections, uniquePrefix } from "./helpers.js";
import { waitUntil, sleep } from "../helpers/wait.js";

const RATE_SHA = createHash("sha1").update(RATE_SCRIPT).digest("hex");

// These tests flush and kill Redis, so they run on a redis-server of their own.
let server: ThrowawayRedis;
const unhandled = new UnhandledRejections();

before(async () => {
  unhandled.start();
  server = await ThrowawayRedis.create();
});

after(async () => {
  unhandled.stop();
  await server.kill();
});

describe("SCRIPT FLUSH during use", () => {
  test("no check fails, nothing falls back, scripts reload, the limit stays exact", { timeout: 30_000 }, async () => {
    const store = new RedisStore({ url: server.url, prefix: uniquePrefix("flush"), timeoutMs: 2000 });
    const admin = new Redis(server.url);
    try {
      assert.ok(await store.ready());
      const limiter = new RedisRateLimiter({ store, name: "flush", algorithm: "gcra", rate: 1, periodMs: 1e9, burst: 1500 });
      let allowed = 0;
      let flushes = 0;
      for (let round = 0; round < 20; round++) {
        // 100 checks in flight, then flush the script cache under them.
        const inFlight = Array.from({ length: 100 }, () => limiter.check("k"));
        await admin.script("FLUSH");
        flushes++;
        for (const d of await Promise.all(inFlight)) if (d.allowed) allowed++;
      }
      assert.equal(flushes, 20);
      // After a last flush, one check puts the script back in Redis's cache.
      await admin.script("FLUSH");
      assert.deepEqual(await admin.script("EXISTS", RATE_SHA), [0]);
      assert.equal((await limiter.check("k")).allowed, false);
      assert.deepEqual(await admin.script("EXISTS", RATE_SHA), [1]);
      assert.equal(allowed, 1500, "2,000 checks on a burst of 1,500 admit exactly 1,500");
      assert.equal(store.counters.fallbackDecisions, 0);
      assert.equal(store.counters.failovers, 0);
      assert.equal(store.mode, "redis");
      assert.deepEqual(unhandled.seen, []);
    } finally {
      admin.disconnect();
      await store.close();
    }
  });
});

describe("Redis stopped mid-run and started again", () => {
  test("decisions follow each failure mode, nothing throws, and every store is back on Redis within 2 s", { timeout: 30_000 }, async () => {
    const modes: FailureMode[] = ["insurance", "open", "closed"];
    const transitions: { store: FailureMode; from: StoreMode; to: StoreMode; reason: string }[] = [];
    const stores = modes.map(
      (m) =>
        new RedisStore({
          url: server.url,
          prefix: uniquePrefix(`kill-${m}`),
          onFailure: m,
          expectedInstances: 2,
          timeoutMs: 50,
          probeIntervalMs: 100,
          events: { onModeChange: (from, to, reason) => transitions.push({ store: m, from, to, reason }) },
        }),
    );
    try {
      for (const s of stores) assert.ok(await s.ready());
      // burst 10 on Redis; the insurance limit is 10 / 2 instances = 5.
      const limiters = stores.map((store) => new RedisRateLimiter({ store, name: "kill", algorithm: "gcra", rate: 1, periodMs: 1e9, burst: 10 }));
      for (const l of limiters) {
        for (let i = 0; i < 3; i++) assert.equal((await l.check("before")).allowed, true);
      }
      assert.deepEqual(stores.map((s) => s.mode), ["redis", "redis", "redis"]);

      await server.kill();
      // Ten checks per store on a fresh key; none may reject its promise.
      const during = await Promise.all(limiters.map((l) => Promise.all(Array.from({ length: 10 }, () => l.check("during")))));
      assert.deepEqual(stores.map((s) => s.mode), modes);
      const [ins, open, closed] = during;
      assert.deepEqual(ins!.map((d) => d.allowed), [...Array(5).fill(true), ...Array(5).fill(false)], "insurance: the limit divided by 2");
      assert.ok(open!.every((d) => d.allowed), "open: everything allowed");
      assert.ok(closed!.every((d) => !d.allowed && d.retryAfterMs > 0), "closed: everything rejected");
      assert.deepEqual([...new Set(closed!.map((d) => d.reason))], ["store_unavailable"], "closed: the reason names the store, not the limit");
      for (const s of stores) assert.ok(s.counters.fallbackDecisions >= 10);
      assert.deepEqual(
        transitions.map((t) => [t.store, t.from, t.to]),
        modes.map((m) => [m, "redis", m]),
        "one transition per store, reported once",
      );

      // Down for a while: probes keep failing, nothing crashes, nothing leaks.
      await sleep(400);
      assert.deepEqual(stores.map((s) => s.mode), modes);

      await server.start();
      const answeredAt = performance.now();
      await waitUntil(() => stores.every((s) => s.mode === "redis"), { timeoutMs: 2000, message: "every store back on Redis" });
      const backAfter = performance.now() - answeredAt;
      assert.ok(backAfter < 2000, `back after ${backAfter} ms`);
      assert.deepEqual(
        transitions.slice(3).map((t) => [t.store, t.to]).sort(),
        modes.map((m) => [m, "redis"]).sort(),
      );
      for (const s of stores) assert.equal(s.counters.recoveries, 1);
      // Decisions come from Redis again (the restarted server is empty: a fresh key has the full burst).
      const fallbacks = stores.map((s) => s.counters.fallbackDecisions);
      for (const l of limiters) {
        const ds = await Promise.all(Array.from({ length: 11 }, () => l.check("after")));
        assert.equal(ds.filter((d) => d.allowed).length, 10);
      }
      assert.deepEqual(stores.map((s) => s.counters.fallbackDecisions), fallbacks);
      assert.deepEqual(unhandled.seen, []);
    } finally {
      for (const s of stores) await s.close();
      if (!(await server.answers())) await server.start();
    }
  });
});

describe("every API while Redis is unreachable", () => {
  test("answers from the failure mode without throwing", { timeout: 20_000 }, async () => {
    const dead = await ThrowawayRedis.create();
    await dead.kill();
    const store = new RedisStore({ url: dead.url, prefix: uniquePrefix("dead"), timeoutMs: 50, probeIntervalMs: 100, expectedInstances: 2 });
    try {
      assert.equal(await store.ready(300), false);
      const box = new RedisPenaltyBox({ store, name: "box", throttleAfter: 100, banFailures: 2 });
      assert.equal(await box.start(300), false);
      assert.equal((await box.recordFailure("ip")).banned, false);
      assert.equal((await box.recordFailure("ip")).banned, true, "the local box bans while Redis is away");
      assert.equal((await box.check("ip")).reason, "banned");
      assert.equal(await box.forget("ip"), true);
      assert.equal((await box.check("ip")).allowed, true);
      await box.close();

      const conc = new RedisConcurrencyLimiter({ store, name: "conc", limit: 4 });
      const a = await conc.tryAcquire("ip");
      const b = await conc.tryAcquire("ip");
      assert.equal(a.decision.allowed && b.decision.allowed, true);
      assert.equal((await conc.tryAcquire("ip")).decision.allowed, false, "insurance: 4 / 2 instances");
      await a.lease!.release();
      assert.equal((await conc.tryAcquire("ip")).decision.allowed, true);

      const q = new LeasedQuota({ store, name: "q", rate: 1000, burst: 1000, sliceMs: 100 });
      const g = await q.take("k", 50);
      assert.equal(g.granted, 50);
      await q.dispose();

      const r1 = new RedisRateLimiter({ store, name: "r1", algorithm: "fixed_window", permitLimit: 4, windowMs: 60_000 });
      const r2 = new RedisRateLimiter({ store, name: "r2", algorithm: "gcra", rate: 1, periodMs: 1e9, burst: 100 });
      const set = new RedisLimiterSet([r1, r2]);
      assert.equal((await set.check(["a", "g"])).allowed, true);
      assert.equal((await set.check(["a", "g"])).allowed, true);
      assert.equal((await set.check(["a", "g"])).rejectedBy, "r1", "insurance: 4 / 2 instances");
      assert.equal((await r2.peek("g")).remaining, 48, "insurance burst 50, two charged, the rejected one not");
      await r1.reset("a");
      assert.ok(store.counters.fallbackDecisions > 0);
      assert.equal(store.mode, "insurance");
      assert.deepEqual(unhandled.seen, []);
    } finally {
      await store.close();
    }
  });
});

describe("closed mode while Redis is unreachable", () => {
  test("every limit rejects with store_unavailable and Retry-After = the probe interval", { timeout: 20_000 }, async () => {
    const dead = await ThrowawayRedis.create();
    await dead.kill();
    const store = new RedisStore({ url: dead.url, prefix: uniquePrefix("closed"), onFailure: "closed", timeoutMs: 50, probeIntervalMs: 150 });
    try {
      assert.equal(await store.ready(300), false);
      const r1 = new RedisRateLimiter({ store, name: "c1", algorithm: "fixed_window", permitLimit: 4, windowMs: 60_000, queueLimit: 2 });
      const r2 = new RedisRateLimiter({ store, name: "c2", algorithm: "gcra", rate: 1, periodMs: 1e9, burst: 100 });
      const conc = new RedisConcurrencyLimiter({ store, name: "c3", limit: 4 });
      const ds = [await r1.check("k"), await r1.acquire("k"), await r1.peek("k"), await r2.check("k"), (await conc.tryAcquire("k")).decision];
      for (const d of ds) assert.deepEqual([d.allowed, d.reason, d.retryAfterMs], [false, "store_unavailable", 150]);
      const c = await new RedisLimiterSet([r2, r1]).check(["k", "k"]);
      assert.deepEqual([c.allowed, c.rejectedBy, c.decisions.at(-1)!.reason], [false, "c2", "store_unavailable"]);
      assert.equal(store.mode, "closed");
      assert.deepEqual(unhandled.seen, []);
    } finally {
      await store.close();
    }
  });
});
