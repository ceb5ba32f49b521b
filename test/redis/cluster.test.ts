/**
 * The Redis store on a real Redis Cluster (three masters, started for this
 * file): every store gets an ioredis `Cluster` client that knows only the
 * first node and finds the others itself. The tests put keys on every node
 * (checked per node), decide many keys in one tick, and require every
 * decision to come from Redis: no CROSSSLOT or other error, no fallback.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Cluster, type ClusterOptions } from "ioredis";
import { type Decision, type LeaseTable, ManualClock, STORE_TIME, admitAll, createLimiter } from "../../src/index.js";
import {
  LeasedQuota,
  RedisConcurrencyLimiter,
  RedisLimiterSet,
  RedisPenaltyBox,
  RedisRateLimiter,
  RedisStore,
  type RedisStoreOptions,
} from "../../src/redis.js";
import { ADMIT_SCRIPT, RELEASE_ALL_SCRIPT } from "../../src/stores/redis/scripts/admit.js";
import { CONCURRENCY_SCRIPT } from "../../src/stores/redis/scripts/concurrency.js";
import { LEASE_SCRIPT } from "../../src/stores/redis/scripts/lease.js";
import { PENALTY_SCRIPT } from "../../src/stores/redis/scripts/penalty.js";
import { RATE_SCRIPT } from "../../src/stores/redis/scripts/rate.js";
import { conformanceSuite } from "../conformance/suite.js";
import { ThrowawayCluster, keySlot } from "./cluster-helpers.js";
import { countCommands, queueAcrossTwoInstances, uniquePrefix } from "./helpers.js";
import { waitUntil } from "../helpers/wait.js";

const sha = (body: string): string => createHash("sha1").update(body).digest("hex");

const prefix = uniquePrefix("cluster");
let cluster: ThrowawayCluster;
/** The port of the master holding a Redis key. */
let ownerOf: (redisKey: string) => number;
const clients: Cluster[] = [];
const stores: RedisStore[] = [];
const closers: { close(): Promise<void> }[] = [];
/** Every mode change of each store: a Redis error on Cluster (CROSSSLOT, MOVED, a timeout, ...) shows up here. */
const transitions = new Map<RedisStore, string[]>();

function clusterClient(options?: ClusterOptions): Cluster {
  const c = new Cluster([cluster.startupNodes[0]!], options);
  clients.push(c);
  return c;
}

/** A store on a Cluster client of its own (one gateway instance). */
async function clusterStore(o: Partial<RedisStoreOptions> = {}, clientOptions?: ClusterOptions): Promise<RedisStore> {
  const changes: string[] = [];
  const s = new RedisStore({
    client: clusterClient(clientOptions),
    prefix,
    // Answers, not latency, are under test on a shared machine.
    timeoutMs: 2000,
    events: { onModeChange: (from, to, reason) => changes.push(`${from} -> ${to}: ${reason}`) },
    ...o,
  });
  stores.push(s);
  transitions.set(s, changes);
  assert.ok(await s.ready(5000), "the Cluster client is ready");
  return s;
}

/** Every decision of `s` so far came from Redis. */
function assertAllFromRedis(s: RedisStore): void {
  assert.deepEqual(transitions.get(s), [], "the store never left Redis");
  assert.equal(s.mode, "redis");
  assert.equal(s.counters.fallbackDecisions, 0, "no decision fell back");
  assert.equal(s.counters.failovers, 0);
}

/** Keys under `pattern` on each master, by port (SCAN on every node). */
async function keysPerNode(pattern: string): Promise<Map<number, number>> {
  const counts = new Map<number, number>();
  for (const node of clients[0]!.nodes("master")) {
    let cursor = "0";
    let n = 0;
    let rounds = 0;
    do {
      const [next, keys] = await node.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      n += keys.length;
      cursor = next;
    } while (cursor !== "0" && ++rounds < 1000);
    counts.set(Number(node.options.port), n);
  }
  return counts;
}

/** Subjects whose state keys under limit `name` sit on `count` different masters (one subject per master). */
function subjectsOnDistinctNodes(name: string, count: number, base: string): string[] {
  const out: string[] = [];
  const used = new Set<number>();
  for (let i = 0; out.length < count && i < 10_000; i++) {
    const subject = `${base}-${i}`;
    const port = ownerOf(`${prefix}{${name}:${subject}}`);
    if (!used.has(port)) {
      used.add(port);
      out.push(subject);
    }
  }
  assert.equal(out.length, count, `subjects of ${name} on ${count} nodes`);
  return out;
}

/** The first subject `<base>-<i>` whose key under limit `name` is not on the master `port`. */
function subjectAwayFrom(name: string, base: string, port: number): string {
  for (let i = 0; i < 10_000; i++) if (ownerOf(`${prefix}{${name}:${base}-${i}}`) !== port) return `${base}-${i}`;
  throw new Error("no subject on another node");
}

let main: RedisStore;

before(
  async () => {
    cluster = await ThrowawayCluster.create(3, 15_000);
    ownerOf = await cluster.slotOwners();
    main = await clusterStore();
    assert.equal(main.cluster, true, "the store knows it talks to a Cluster");
    const masters = clients[0]!.nodes("master");
    assert.equal(masters.length, 3, "the client found all three masters from one startup node");
    // The slot arithmetic used to place keys agrees with Redis.
    for (const k of [`${prefix}{a:b}`, "plain", "x{}y", "{user1000}.following"]) {
      assert.equal(await masters[0]!.cluster("KEYSLOT", k), keySlot(k), `slot of ${k}`);
    }
  },
  { timeout: 30_000 },
);

after(async () => {
  for (const c of closers) await c.close();
  for (const s of stores) await s.close();
  for (const c of clients) c.disconnect();
  await cluster?.stop();
});

// The engine's conformance table, unchanged, on a Cluster store (as in
// conformance.test.ts: the suite's ManualClock is sent to the scripts).
conformanceSuite("redis cluster store", {
  store: () => main,
  crossSlotSets: true,
  answered: () => {
    if (main.mode !== "redis" || main.counters.fallbackDecisions !== 0) {
      throw new Error("the store fell back: this decision did not come from Redis");
    }
  },
});

test("the conformance suite's keys landed on every master, and no decision fell back", async () => {
  const perNode = await keysPerNode(`${prefix}{conf-*`);
  assert.equal(perNode.size, 3);
  for (const [port, n] of perNode) assert.ok(n > 0, `node ${port} holds ${n} conformance keys`);
  assertAllFromRedis(main);
});

describe("one tick over keys on every node", () => {
  test("1,500 checks on 500 keys and 150 on a hot key decide exactly and in order, with no CROSSSLOT and no fallback", { timeout: 20_000 }, async () => {
    const s = await clusterStore();
    const many = new RedisRateLimiter({ store: s, name: "many", algorithm: "gcra", rate: 1, periodMs: 3_600_000, burst: 2 });
    const hot = new RedisRateLimiter({ store: s, name: "hot", algorithm: "fixed_window", permitLimit: 50, windowMs: 3_600_000 });
    const keys = Array.from({ length: 500 }, (_, i) => `10.1.${i >> 8}.${i & 255}`);
    const manyChecks: Promise<Decision>[][] = keys.map(() => []);
    const hotChecks: Promise<Decision>[] = [];
    // All in one tick: three rounds over the 500 keys, the hot key interleaved.
    for (let round = 0; round < 3; round++) {
      keys.forEach((k, i) => {
        manyChecks[i]!.push(many.check(k));
        if (i % 10 === 0) hotChecks.push(hot.check("everyone"));
      });
    }
    assert.equal(hotChecks.length, 150);
    const perKey = await Promise.all(manyChecks.map((ps) => Promise.all(ps)));
    perKey.forEach((ds, i) => {
      assert.deepEqual(
        ds.map((d) => [d.allowed, d.remaining, d.reason]),
        [
          [true, 1, undefined],
          [true, 0, undefined],
          [false, 0, "rate_limited"],
        ],
        `key ${keys[i]}`,
      );
    });
    const hotDs = await Promise.all(hotChecks);
    assert.equal(hotDs.filter((d) => d.allowed).length, 50, "a limit of 50 on one key admits exactly 50 of 150");
    assert.deepEqual(
      hotDs.map((d, i) => (d.allowed ? i : -1)).filter((i) => i >= 0),
      [...Array(50).keys()],
      "the hot key's checks are decided in arrival order",
    );
    assertAllFromRedis(s);

    // The keys really are spread over the cluster.
    const perNode = await keysPerNode(`${prefix}{many:*`);
    assert.equal([...perNode.values()].reduce((a, b) => a + b, 0), 500, `keys per node: ${JSON.stringify([...perNode])}`);
    for (const [port, n] of perNode) assert.ok(n > 50, `node ${port} holds ${n} of the 500 keys`);
    const expected = new Map<number, number>();
    for (const k of keys) {
      const p = ownerOf(many.redisKey(k));
      expected.set(p, (expected.get(p) ?? 0) + 1);
    }
    assert.deepEqual(new Map([...perNode].sort()), new Map([...expected].sort()), "each key sits on the master owning its slot");
  });

  for (const [label, name, clientOptions] of [
    ["a default Cluster client", "first-tick", undefined],
    ["a Cluster client with enableOfflineQueue: false, as docs/redis.md advises", "first-tick-no-queue", { enableOfflineQueue: false }],
  ] as const) {
    test(`the first tick of a fresh client, two keys per node, is decided on Redis within the default 50 ms deadline (${label})`, { timeout: 10_000 }, async () => {
      const s = await clusterStore({ timeoutMs: 50 }, clientOptions);
      const l = new RedisRateLimiter({ store: s, name, algorithm: "gcra", rate: 1, periodMs: 3_600_000, burst: 5 });
      const subjects = [...subjectsOnDistinctNodes(name, 3, "a"), ...subjectsOnDistinctNodes(name, 3, "b")];
      // Two calls per master in one tick: the second reaches a node connection that is still connecting.
      const ds = await Promise.all(subjects.map((k) => l.check(k)));
      assertAllFromRedis(s);
      for (const d of ds) assert.deepEqual([d.allowed, d.remaining], [true, 4]);
    });
  }

  test("fixed and sliding windows on keys over every node answer like the memory limiter, tick after tick", { timeout: 20_000 }, async () => {
    const s = await clusterStore();
    const clock = new ManualClock(1_000);
    const shapes = [
      { name: "fw-model", algorithm: "fixed_window" as const, permitLimit: 3, windowMs: 1000 },
      { name: "sw-model", algorithm: "sliding_window" as const, limit: 4, windowMs: 1000 },
    ];
    for (const shape of shapes) {
      const redis = new RedisRateLimiter({ ...shape, store: s, clock });
      const memory = createLimiter({ ...shape, clock });
      const subjects = Array.from({ length: 60 }, (_, i) => `user-${i}`);
      assert.equal(new Set(subjects.map((k) => ownerOf(redis.redisKey(k)))).size, 3, "subjects on all three masters");
      const steps = [0, 0, 150, 0, 400, 300, 0, 149, 1, 700, 2500, 0, 0];
      for (let i = 0; i < steps.length; i++) {
        clock.advance(steps[i]!);
        // Every subject twice per tick, cost 1 and 2 alternating by subject.
        const costs = subjects.map((_, j) => 1 + (j % 2));
        const got = await Promise.all(subjects.flatMap((k, j) => [redis.check(k, costs[j]), redis.check(k, 1)]));
        const want = subjects.flatMap((k, j) => [memory.check(k, costs[j]), memory.check(k, 1)]);
        assert.deepEqual(got, want, `${shape.algorithm}, step ${i} at t=${clock.now()}`);
      }
      redis.dispose();
    }
    assertAllFromRedis(s);
  });
});

describe("fixed-window queue on Cluster", () => {
  test("waiters queued on two instances (two Cluster clients) are admitted at most permitLimit per window in total", { timeout: 15_000 }, async () => {
    const clock = new ManualClock(0);
    const opts = { algorithm: "fixed_window" as const, permitLimit: 3, windowMs: 1000, queueLimit: 6, name: "queue", clock };
    const sa = await clusterStore();
    const sb = await clusterStore();
    const a = new RedisRateLimiter({ ...opts, store: sa });
    const b = new RedisRateLimiter({ ...opts, store: sb });
    await queueAcrossTwoInstances(a, b, clock);
    a.dispose();
    b.dispose();
    assertAllFromRedis(sa);
    assertAllFromRedis(sb);
  });
});

describe("concurrency leases on Cluster", () => {
  test("leases are shared across two Cluster clients, exact under contention on every node, released and expired", { timeout: 15_000 }, async () => {
    const clock = new ManualClock(0);
    const opts = { name: "conc", limit: 3, leaseTtlMs: 1000, clock };
    const sa = await clusterStore();
    const sb = await clusterStore();
    const a = new RedisConcurrencyLimiter({ ...opts, store: sa });
    const b = new RedisConcurrencyLimiter({ ...opts, store: sb });
    const subjects = Array.from({ length: 30 }, (_, i) => `conn-${i}`);
    assert.equal(new Set(subjects.map((k) => ownerOf(`${prefix}{conc:${k}}`))).size, 3, "subjects on all three masters");
    // 5 tries per subject from each instance, all at once: exactly 3 leases per subject.
    const results = await Promise.all(subjects.map((k) => Promise.all([...Array(5)].flatMap(() => [a.tryAcquire(k), b.tryAcquire(k)]))));
    results.forEach((rs, i) => {
      assert.equal(rs.filter((r) => r.decision.allowed).length, 3, `subject ${subjects[i]}`);
      for (const r of rs) if (!r.decision.allowed) assert.equal(r.decision.reason, "concurrency_limit");
    });
    for (const k of subjects) assert.equal(await b.held(k), 3);
    // Release one lease of the first subject: one more fits, from either instance.
    const first = results[0]!.filter((r) => r.lease !== undefined);
    await first[0]!.lease!.release();
    assert.equal(await a.held(subjects[0]!), 2);
    const again = await a.tryAcquire(subjects[0]!);
    assert.equal(again.decision.allowed, true);
    clock.advance(600);
    assert.equal(await again.lease!.renew(), true);
    clock.advance(600);
    // The others expired at 1000; the renewed one lasts until 1600.
    assert.equal(await b.held(subjects[0]!), 1);
    assert.equal(await b.held(subjects[1]!), 0);
    assertAllFromRedis(sa);
    assertAllFromRedis(sb);
  });
});

describe("RedisLimiterSet on Cluster", () => {
  test("keys in different slots: a rejected composite charges no limit", { timeout: 15_000 }, async () => {
    const s = await clusterStore();
    const clock = new ManualClock(0);
    const perIp = new RedisRateLimiter({ store: s, name: "set-ip", algorithm: "fixed_window", permitLimit: 2, windowMs: 1000, clock });
    const perUser = new RedisRateLimiter({ store: s, name: "set-user", algorithm: "gcra", rate: 1, periodMs: 1e9, burst: 5, clock });
    const global = new RedisRateLimiter({ store: s, name: "set-global", algorithm: "gcra", rate: 1, periodMs: 1e9, burst: 100, clock });
    const set = new RedisLimiterSet([perIp, perUser, global]);
    const ip = "203.0.113.7";
    const user = subjectAwayFrom("set-user", "user", ownerOf(perIp.redisKey(ip)));
    assert.notEqual(ownerOf(perIp.redisKey(ip)), ownerOf(perUser.redisKey(user)), "the per-IP and per-user keys live on different masters");

    assert.equal((await set.check([ip, user, "all"])).allowed, true);
    assert.equal((await set.check([ip, user, "all"])).allowed, true);
    const d = await set.check([ip, user, "all"]);
    assert.equal(d.allowed, false);
    assert.equal(d.rejectedBy, "set-ip");
    assert.equal(d.retryAfterMs, 1000);
    assert.equal((await perUser.peek(user)).remaining, 3, "the rejected request charged the per-user limit nothing");
    assert.equal((await global.peek("all")).remaining, 98, "the rejected request charged the global limit nothing");
    const big = await set.check([`${ip}-b`, user, "all"], 3);
    assert.equal(big.allowed, false);
    assert.equal(big.decisions[0]!.reason, "insufficient_capacity");
    assert.equal((await global.peek("all")).remaining, 98);

    assertAllFromRedis(s);
  });

  test("keys in different slots, concurrent composites: no limit over-admits, and rejected composites charge no limit", { timeout: 15_000 }, async (t) => {
    const s = await clusterStore();
    const wide = new RedisRateLimiter({ store: s, name: "set-wide", algorithm: "gcra", rate: 1, periodMs: 1e9, burst: 10 });
    const narrow = new RedisRateLimiter({ store: s, name: "set-narrow", algorithm: "gcra", rate: 1, periodMs: 1e9, burst: 3 });
    const pair = new RedisLimiterSet([wide, narrow]);
    const nk = subjectAwayFrom("set-narrow", "n", ownerOf(wide.redisKey("w")));
    assert.notEqual(ownerOf(wide.redisKey("w")), ownerOf(narrow.redisKey(nk)), "different masters");
    const ds = await Promise.all([...Array(30)].map(() => pair.check(["w", nk])));
    const admitted = ds.filter((x) => x.allowed).length;
    const wideUsed = 10 - (await wide.peek("w")).remaining;
    const narrowUsed = 3 - (await narrow.peek(nk)).remaining;
    t.diagnostic(`30 concurrent cross-slot composites: ${admitted} admitted; wide limit charged ${wideUsed}, narrow ${narrowUsed}`);
    // Every charge is a consume in Redis, so no limit over-admits.
    assert.ok(admitted >= 1 && admitted <= 3, `admitted ${admitted}`);
    assert.ok(narrowUsed <= 3 && wideUsed <= 10);
    for (const x of ds) if (!x.allowed) assert.ok(x.rejectedBy === "set-wide" || x.rejectedBy === "set-narrow");
    assertAllFromRedis(s);
    // redis-limiter-set.ts: peek-then-charge "never charges a limit for a rejected request".
    assert.equal(wideUsed, admitted, "the wide limit is charged only for admitted composites");
  });

  test("a one-limit set is one script call on its slot: exact under contention", { timeout: 15_000 }, async () => {
    const s = await clusterStore();
    const only = new RedisRateLimiter({ store: s, name: "set-one", algorithm: "fixed_window", permitLimit: 10, windowMs: 3_600_000 });
    const set = new RedisLimiterSet([only]);
    const ds = await Promise.all([...Array(30)].map(() => set.check(["k"])));
    assert.equal(ds.filter((d) => d.allowed).length, 10);
    assert.equal((await only.peek("k")).remaining, 0);
    assertAllFromRedis(s);
  });

  test("an admission's leases: one script call when they share a slot, one by one when not; all or nothing under contention either way", { timeout: 15_000 }, async (t) => {
    const s = await clusterStore();
    const admit = (global: LeaseTable<false>, perKey: LeaseTable<false>, k: string) =>
      admitAll(s, {
        leases: [
          { table: global, key: "*", now: STORE_TIME, shadow: false },
          { table: perKey, key: k, now: STORE_TIME, shadow: false },
        ],
        rates: [],
      });
    for (const shared of [true, false]) {
      const global = s.leaseTable(`adm-global-${shared}`, { limit: 100, ttlMs: 60_000 });
      const perKey = s.leaseTable(`adm-ip-${shared}`, { limit: 3, ttlMs: 60_000 });
      const slot = keySlot(global.redisKey("*"));
      let n = 0;
      while ((keySlot(perKey.redisKey(`k-${n}`)) === slot) !== shared) n++;
      const k = `k-${n}`;
      const as = await Promise.all([...Array(30)].map(() => admit(global, perKey, k)));
      const admitted = as.filter((a) => a !== undefined && a.leases.length === 2 && a.leases.every((g) => g.held >= 0)).length;
      t.diagnostic(`30 concurrent admissions, lease keys ${shared ? "in one slot" : "in two slots"}: ${admitted} admitted`);
      assert.ok(as.every((a) => a !== undefined));
      if (shared) assert.equal(admitted, 3, "one script call decides both caps: exactly the per-address limit is admitted");
      else assert.ok(admitted >= 1 && admitted <= 3, `admitted ${admitted}`);
      // A refused admission kept no global lease (released again at once on the one-by-one path).
      await waitUntil(async () => (await global.held("*", STORE_TIME)) === admitted, { timeoutMs: 5000, message: "the refused admissions' global leases to be released" });
      assert.equal(await perKey.held(k, STORE_TIME), admitted);
    }
    assertAllFromRedis(s);
  });

  test("ready() loads the admission's scripts on every master (a first release answered NOSCRIPT would reach Redis after the next admission)", async () => {
    const masters = clients[0]!.nodes("master");
    await Promise.all(masters.map((m) => m.script("FLUSH")));
    await clusterStore();
    for (const m of masters) {
      assert.deepEqual(await m.script("EXISTS", sha(ADMIT_SCRIPT), sha(RELEASE_ALL_SCRIPT)), [1, 1], `loaded on node ${m.options.port}`);
    }
  });

  test("keys in one slot (different hash tags): concurrent composites charge every limit or none", { timeout: 15_000 }, async (t) => {
    const s = await clusterStore();
    const wide = new RedisRateLimiter({ store: s, name: "slot-wide", algorithm: "gcra", rate: 1, periodMs: 1e9, burst: 10 });
    const narrow = new RedisRateLimiter({ store: s, name: "slot-narrow", algorithm: "gcra", rate: 1, periodMs: 1e9, burst: 3 });
    // A subject for the narrow limit whose key shares the wide key's slot.
    const slot = keySlot(wide.redisKey("w"));
    let n = 0;
    while (keySlot(narrow.redisKey(`n-${n}`)) !== slot) n++;
    const nk = `n-${n}`;
    const node = clients[0]!.nodes("master").find((r) => Number(r.options.port) === ownerOf(wide.redisKey("w")))!;
    assert.equal(await node.cluster("KEYSLOT", narrow.redisKey(nk)), await node.cluster("KEYSLOT", wide.redisKey("w")), "one slot");
    const set = new RedisLimiterSet([wide, narrow]);
    const ds = await Promise.all([...Array(30)].map(() => set.check(["w", nk])));
    const admitted = ds.filter((d) => d.allowed).length;
    const wideUsed = 10 - (await wide.peek("w")).remaining;
    t.diagnostic(`30 concurrent same-slot composites: ${admitted} admitted; wide limit charged ${wideUsed}`);
    assert.equal(admitted, 3, "the narrow limit admits exactly 3");
    assert.equal(wideUsed, 3, "keys in one slot are decided by one script call: rejected composites charge the wide limit nothing");
    assertAllFromRedis(s);
  });
});

describe("leased quotas on Cluster", () => {
  test("two instances share buckets on every node; idle and disposed leases return", { timeout: 15_000 }, async () => {
    const clock = new ManualClock(1_000);
    const opts = { name: "lease", rate: 1, periodMs: 3_600_000, burst: 10_000, sliceMs: 3_600_000_000, idleMs: 200, clock };
    const qa = new LeasedQuota({ ...opts, store: await clusterStore() });
    const qb = new LeasedQuota({ ...opts, store: await clusterStore() });
    assert.equal(qa.slice, 1000);
    const subjects = subjectsOnDistinctNodes("lease", 3, "stream");
    for (const k of subjects) {
      assert.deepEqual(await qa.take(k, 10), { granted: 10, retryAfterMs: 0 });
      assert.deepEqual(await qb.take(k, 5), { granted: 5, retryAfterMs: 0 });
      assert.equal(await qb.available(k), 10_000 - 2000, "each instance reserved one slice in Redis");
    }
    assert.equal(qa.trySpend(subjects[0]!, 90), 90, "spent locally");
    // Both instances' leases go idle: what they did not spend goes back.
    clock.advance(200);
    await waitUntil(async () => (await Promise.all(subjects.map((k) => qa.available(k)))).every((v, i) => v === 10_000 - (i === 0 ? 100 : 10) - 5), { timeoutMs: 3000, message: "idle leases returned on every node" });
    assert.equal(qa.held + qb.held, 0);
    // A lease held at dispose goes back too.
    for (const k of subjects) assert.equal((await qb.take(k, 7)).granted, 7);
    assert.equal(await qa.available(subjects[1]!), 10_000 - 15 - 1000);
    await qb.dispose();
    await qa.dispose();
    for (const [i, k] of subjects.entries()) assert.equal(await qa.available(k), 10_000 - (i === 0 ? 100 : 10) - 12);
    for (const s of stores.slice(-2)) assertAllFromRedis(s);
  });
});

describe("shared bans on Cluster", () => {
  async function instance(name: string, clientOptions?: ClusterOptions): Promise<{ store: RedisStore; box: RedisPenaltyBox }> {
    const store = await clusterStore({}, clientOptions);
    const box = new RedisPenaltyBox({ store, name, throttleAfter: 100, banFailures: 3, banWindowMs: 60_000, banDurationMs: 30_000 });
    closers.push(box);
    assert.equal(await box.start(5000), true, "the box subscribed and loaded the ban list");
    return { store, box };
  }

  /** Milliseconds until `cond` holds (bounded by 10 s: a loaded machine is slow, a missing push never comes). */
  async function latency(cond: () => boolean): Promise<number> {
    const start = performance.now();
    await waitUntil(cond, { timeoutMs: 10_000, message: "propagation" });
    return performance.now() - start;
  }

  /** latency(cond), asserting that `receiver` asked Redis nothing meanwhile: it learned by the published message. */
  async function pushed(receiver: RedisStore, cond: () => boolean): Promise<number> {
    const sent = countCommands(receiver.client);
    try {
      const ms = await latency(cond);
      assert.equal(sent.count, 0, "the receiving instance asked Redis nothing");
      return ms;
    } finally {
      sent.stop();
    }
  }

  async function propagates(name: string, diagnostics: string[], clientOptions?: ClusterOptions): Promise<void> {
    const a = await instance(name, clientOptions);
    const b = await instance(name, clientOptions);
    const subjects = subjectsOnDistinctNodes(name, 3, "198.51.100");
    for (const k of subjects) {
      assert.equal(b.box.isBanned(k), false);
      await a.box.ban(k, 60_000);
      const seen = await pushed(b.store, () => b.box.isBanned(k));
      diagnostics.push(`ban of ${k} seen after ${seen.toFixed(1)} ms`);
      const d = await b.box.check(k);
      assert.equal(d.reason, "banned");
      // b reads the ban's end from its cache against its estimate of Redis time, learned from replies: the
      // estimate lags Redis by up to one round trip, so the wait may read a few ms over the 60 s ban.
      assert.ok(d.retryAfterMs > 59_000 && d.retryAfterMs <= 60_000 + 25, `retryAfterMs ${d.retryAfterMs}`);
    }
    assert.deepEqual((await b.box.banned()).map((x) => x.key).sort(), [...subjects].sort(), "the ban listing");
    await a.box.forget(subjects[0]!);
    const lifted = await pushed(b.store, () => !b.box.isBanned(subjects[0]!));
    diagnostics.push(`unban seen after ${lifted.toFixed(1)} ms`);
    assert.equal((await b.box.check(subjects[0]!)).allowed, true);
    await waitUntil(async () => (await a.box.banned()).length === 2, { timeoutMs: 1000, message: "the unbanned key leaves the listing" });

    // Failures recorded through both clients add up to a ban both see.
    const k = "u:mallory";
    assert.equal((await a.box.recordFailure(k)).streak, 1);
    assert.equal((await b.box.recordFailure(k)).streak, 2);
    const r = await a.box.recordFailure(k);
    assert.equal(r.banned, true);
    await latency(() => b.box.isBanned(k));
    await waitUntil(async () => (await a.box.banned()).some((x) => x.key === k), { timeoutMs: 1000, message: "the ban in the index" });
    // A third instance started after the bans loads them from the index.
    const c = await instance(name, clientOptions);
    assert.deepEqual([...subjects.slice(1), k].filter((x) => !c.box.isBanned(x)), []);
    for (const x of [a, b, c]) assertAllFromRedis(x.store);
  }

  test("a ban through one Cluster client is pushed to another (no command from it); listing, unban, failures add up", { timeout: 30_000 }, async (t) => {
    const notes: string[] = [];
    await propagates("bans", notes);
    for (const n of notes) t.diagnostic(n);
  });

  test("the same with clients that do not queue offline (enableOfflineQueue: false, as docs/redis.md advises)", { timeout: 30_000 }, async (t) => {
    const notes: string[] = [];
    await propagates("bans-nq", notes, { enableOfflineQueue: false });
    for (const n of notes) t.diagnostic(n);
  });
});

describe("SCRIPT FLUSH on every node", () => {
  test("scripts reload on every node under load: nothing falls back, counts stay exact", { timeout: 20_000 }, async () => {
    const s = await clusterStore();
    const masters = clients[0]!.nodes("master");
    const flushAll = () => Promise.all(masters.map((m) => m.script("FLUSH")));
    const limiter = new RedisRateLimiter({ store: s, name: "flush", algorithm: "gcra", rate: 1, periodMs: 1e9, burst: 50 });
    const keys = Array.from({ length: 60 }, (_, i) => `f-${i}`);
    assert.equal(new Set(keys.map((k) => ownerOf(limiter.redisKey(k)))).size, 3);
    const allowed = new Map<string, number>();
    for (let round = 0; round < 10; round++) {
      // 6 checks per key in flight (360 in all), then flush every node's script cache under them.
      const inFlight = keys.flatMap((k) => [...Array(6)].map(() => limiter.check(k).then((d) => d.allowed && allowed.set(k, (allowed.get(k) ?? 0) + 1))));
      await flushAll();
      await Promise.all(inFlight);
    }
    for (const k of keys) assert.equal(allowed.get(k), 50, `60 checks on a burst of 50 admit exactly 50 on ${k}`);

    // Every other script reloads too, on whichever node its key lives.
    await flushAll();
    const conc = new RedisConcurrencyLimiter({ store: s, name: "flush-conc", limit: 1 });
    const box = new RedisPenaltyBox({ store: s, name: "flush-box" });
    const quota = new LeasedQuota({ store: s, name: "flush-lease", rate: 100, burst: 100 });
    for (const k of keys) assert.equal((await limiter.check(k)).allowed, false);
    for (const k of subjectsOnDistinctNodes("flush-conc", 3, "c")) assert.equal((await conc.tryAcquire(k)).decision.allowed, true);
    for (const k of subjectsOnDistinctNodes("flush-box", 3, "b")) assert.equal((await box.recordFailure(k)).streak, 1);
    for (const k of subjectsOnDistinctNodes("flush-lease", 3, "l")) assert.equal((await quota.take(k, 1)).granted, 1);
    await quota.dispose();
    for (const m of masters) {
      assert.deepEqual(
        await m.script("EXISTS", sha(RATE_SCRIPT), sha(CONCURRENCY_SCRIPT), sha(PENALTY_SCRIPT), sha(LEASE_SCRIPT)),
        [1, 1, 1, 1],
        `scripts cached again on node ${m.options.port}`,
      );
    }
    assertAllFromRedis(s);
  });
});
