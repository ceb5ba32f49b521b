/**
 * Bans and forgets recorded by a RedisPenaltyBox while Redis is down are
 * written back when the store returns to Redis: shared with the other
 * instances, kept across restarts, with their own end (not a new full ban).
 * These tests kill and restart Redis, so they run on a redis-server of their own.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Redis } from "ioredis";
import { ManualClock } from "../../src/index.js";
import { RedisPenaltyBox, RedisStore, type RedisStoreOptions } from "../../src/redis.js";
import { ThrowawayRedis, UnhandledRejections, uniquePrefix } from "./helpers.js";
import { waitUntil, sleep } from "../helpers/wait.js";

type BoxOptions = Partial<ConstructorParameters<typeof RedisPenaltyBox>[0]>;

let server: ThrowawayRedis;
let admin: Redis;
const prefix = uniquePrefix("outage-bans");
const opened: { close(): Promise<void> }[] = [];
const unhandled = new UnhandledRejections();

before(async () => {
  unhandled.start();
  server = await ThrowawayRedis.create();
  admin = new Redis(server.url, { maxRetriesPerRequest: 1 });
  admin.on("error", () => {
    // Refused connections while the server is down are expected.
  });
});

after(async () => {
  for (const c of opened.reverse()) await c.close();
  admin.disconnect();
  await server.kill();
  unhandled.stop();
});

/** One gateway instance: its own store (own connections) and its box, started on a live Redis. */
async function instance(name: string, box: BoxOptions = {}, store: RedisStoreOptions = {}): Promise<{ store: RedisStore; box: RedisPenaltyBox }> {
  // A call times out after 1 s: long enough that a live Redis on a loaded machine never looks failed
  // (a spurious failover would add a recovery the tests do not expect), short enough to keep them quick.
  const s = new RedisStore({ url: server.url, prefix, timeoutMs: 1000, probeIntervalMs: 50, ...store });
  const b = new RedisPenaltyBox({ store: s, name, ...box });
  opened.push(s, b);
  assert.ok(await s.ready(), "store ready");
  assert.ok(await b.start(), "box started");
  return { store: s, box: b };
}

/** The penalty state of `key` as Redis holds it: [streak, lastFailure, throttledUntil, windowStart, windowCount, bannedUntil, bans]. */
async function stored(name: string, key: string): Promise<number[] | undefined> {
  const raw = await admin.get(`${prefix}{${name}:${key}}`);
  return raw === null ? undefined : raw.split(" ").map(Number);
}

async function indexed(name: string, key: string): Promise<number | undefined> {
  const score = await admin.zscore(`${prefix}{${name}}:bans`, key);
  return score === null ? undefined : Number(score);
}

/** Kills Redis and waits until `store` has switched to its failure mode. */
async function stopRedis(...stores: RedisStore[]): Promise<void> {
  await server.kill();
  await waitUntil(() => stores.every((s) => s.mode !== "redis"), { timeoutMs: 5000, message: "stores in their failure mode" });
}

async function startRedis(): Promise<void> {
  await server.start();
  // The test's own client, not the product's: ioredis's reconnect back-off reaches 2 s per try after an
  // outage, and a loaded machine adds to it. Bounded generously; what the tests assert comes after.
  await waitUntil(() => admin.status === "ready", { timeoutMs: 15_000, message: "admin connection back" });
}

const params = { throttleAfter: 100, banFailures: 3, banWindowMs: 60_000, banDurationMs: 60_000 };

describe("bans recorded while Redis is down", () => {
  test("are written back on recovery: other instances see them, with the end they had", { timeout: 30_000 }, async () => {
    const clock = new ManualClock(1_000_000);
    // A recovers only when asked (no probe), so the moment of recovery is known.
    const a = await instance("t1", { clock, ...params }, { probeIntervalMs: 1e9 });
    const b = await instance("t1", { clock, ...params });

    await stopRedis(a.store);
    const untilK = await a.box.ban("k", 120_000);
    assert.equal(untilK, 1_120_000);
    clock.advance(10_000);
    assert.equal((await a.box.recordFailure("k2")).banned, false);
    assert.equal((await a.box.recordFailure("k2")).banned, false);
    const r = await a.box.recordFailure("k2");
    assert.equal(r.banned, true, "the third failure bans locally");
    const untilK2 = r.bannedUntil;
    assert.equal(untilK2, 1_070_000);
    assert.equal(a.box.pendingWriteBack, 2);
    // While Redis is down the local box answers.
    assert.equal((await a.box.check("k")).reason, "banned");
    assert.equal((await a.box.check("k2")).reason, "banned");
    assert.equal(a.box.isBanned("k"), true);
    clock.advance(5_000);

    await startRedis();
    // An instance started after Redis is back, before A has written anything back.
    const c = await instance("t1", { clock, ...params });
    assert.equal(c.box.isBanned("k"), false);
    assert.equal(await stored("t1", "k"), undefined);
    await waitUntil(() => a.store.client.status === "ready", { timeoutMs: 5000, message: "A's client reconnected" });
    assert.equal(a.store.mode, "insurance");

    assert.ok(await a.store.ready(), "A back on Redis");
    // C started on a live Redis and never reconnected: it learns of bans only from their messages,
    // so seeing these proves the write-back published them (how fast is a benchmark's business).
    await waitUntil(() => c.box.isBanned("k") && c.box.isBanned("k2"), { timeoutMs: 5000, message: "C sees the written-back bans" });

    // The instance that ran through the outage learns them too (its subscriber reconnects and reloads).
    await waitUntil(async () => b.box.isBanned("k") && b.box.isBanned("k2") && b.store.mode === "redis", { timeoutMs: 5000, message: "B sees the bans" });
    const dk = await b.box.check("k");
    assert.equal(dk.reason, "banned");
    assert.equal(dk.retryAfterMs, 105_000, "the time the ban had left, not a new full ban");
    assert.equal((await b.box.check("k2")).retryAfterMs, 55_000);

    // Redis holds the local ends, counted once.
    assert.deepEqual((await stored("t1", "k"))?.slice(5), [untilK, 1]);
    assert.deepEqual((await stored("t1", "k2"))?.slice(5), [untilK2, 1]);
    const st = await b.box.status("k2");
    assert.deepEqual([st.bannedUntil, st.bans, st.streak], [untilK2, 1, 0]);

    // In the index, and no longer in A's local box.
    await waitUntil(() => a.box.pendingWriteBack === 0, { timeoutMs: 2000, message: "A's local box cleared" });
    assert.equal(await indexed("t1", "k"), untilK);
    assert.equal(await indexed("t1", "k2"), untilK2);
    assert.equal(a.box.isBanned("k"), true, "A's cache holds the ban it wrote back");
    assert.equal(await a.box.writeBack(), true, "nothing left to write back");
    assert.deepEqual(unhandled.seen, []);
  });

  test("a written-back ban survives: an instance started later loads it from the index", { timeout: 30_000 }, async () => {
    const clock = new ManualClock(5_000_000);
    const a = await instance("t2", { clock, ...params });
    await stopRedis(a.store);
    const until = await a.box.ban("p", 300_000);
    clock.advance(20_000);
    await startRedis();
    await waitUntil(() => a.store.mode === "redis" && a.box.pendingWriteBack === 0, { timeoutMs: 5000, message: "A recovered and wrote back" });
    assert.equal(await indexed("t2", "p"), until);
    // A goes away entirely; a new instance starts.
    await a.box.close();
    await a.store.close();
    const c = await instance("t2", { clock, ...params });
    assert.equal(c.box.isBanned("p"), true, "loaded at start, before any message");
    assert.deepEqual(await c.box.banned(), [{ key: "p", bannedUntil: until }]);
    assert.equal((await c.box.check("p")).retryAfterMs, 280_000);
  });

  test("Redis's own later ban for the key wins; an earlier one is lengthened", { timeout: 30_000 }, async () => {
    const clock = new ManualClock(9_000_000);
    const a = await instance("t3", { clock, ...params }, { probeIntervalMs: 1e9 });
    await stopRedis(a.store);
    await a.box.ban("late", 60_000);
    const local = await a.box.ban("early", 120_000);
    const ended = await a.box.ban("ended", 30_000);
    assert.equal(a.box.pendingWriteBack, 3);

    await startRedis();
    // Before A is back, another instance bans the same keys in Redis.
    const b = await instance("t3", { clock, ...params });
    const late = await b.box.ban("late", 600_000);
    const early = await b.box.ban("early", 10_000);
    await b.box.ban("ended", 1);
    clock.advance(1_000);
    await waitUntil(() => a.store.client.status === "ready", { timeoutMs: 5000, message: "A's client reconnected" });
    assert.ok(await a.store.ready(), "A back on Redis");
    await waitUntil(() => a.box.pendingWriteBack === 0, { timeoutMs: 5000, message: "A wrote back" });

    assert.deepEqual((await stored("t3", "late"))?.slice(5), [late, 1], "the later end in Redis is kept, not counted again");
    assert.deepEqual((await stored("t3", "early"))?.slice(5), [local, 1], "a live ban lengthened is not a second ban");
    assert.deepEqual((await stored("t3", "ended"))?.slice(5), [ended, 2], "after an ended ban, the local one counts as the next");
    assert.ok(early < local);
    assert.equal(await indexed("t3", "late"), late);
    assert.equal(await indexed("t3", "early"), local);
    assert.equal((await a.box.check("late")).retryAfterMs, late - clock.now());
    await waitUntil(() => b.box.isBanned("ended"), { timeoutMs: 1000, message: "B sees the new ban of an ended one" });
    assert.equal((await b.box.check("early")).retryAfterMs, local - clock.now(), "B sees the longer ban");
  });

  test("keys forgotten during the outage are forgotten in Redis; a key forgotten then banned again ends up banned", { timeout: 30_000 }, async () => {
    const clock = new ManualClock(20_000_000);
    const a = await instance("t5", { clock, ...params }, { probeIntervalMs: 1e9 });
    const b = await instance("t5", { clock, ...params });
    await b.box.ban("f", 600_000);
    await b.box.ban("g", 600_000);
    await waitUntil(() => a.box.isBanned("f") && a.box.isBanned("g"), { timeoutMs: 1000, message: "A caches B's bans" });

    await stopRedis(a.store);
    await a.box.forget("f");
    assert.equal((await a.box.check("f")).allowed, true);
    await a.box.forget("g");
    const g = await a.box.ban("g", 30_000);
    assert.equal(a.box.pendingWriteBack, 3, "two forgets and a ban");
    await startRedis();
    // The throw-away server starts empty: put back the bans a persistent Redis would have kept.
    await waitUntil(() => b.store.mode === "redis", { timeoutMs: 5000, message: "B back on Redis" });
    await b.box.ban("f", 600_000);
    await b.box.ban("g", 600_000);
    await waitUntil(() => b.box.isBanned("f") && b.box.isBanned("g"), { timeoutMs: 1000, message: "B holds the bans" });
    await waitUntil(() => a.store.client.status === "ready", { timeoutMs: 5000, message: "A's client reconnected" });
    assert.ok(await a.store.ready(), "A back on Redis");
    await waitUntil(() => a.box.pendingWriteBack === 0, { timeoutMs: 5000, message: "A wrote back" });

    assert.equal(await stored("t5", "f"), undefined);
    assert.equal(await indexed("t5", "f"), undefined);
    assert.deepEqual((await stored("t5", "g"))?.slice(5), [g, 1], "the ban made after the forget, not the old one");
    assert.equal(await indexed("t5", "g"), g);
    await waitUntil(async () => b.store.mode === "redis" && !b.box.isBanned("f") && (await b.box.check("f")).allowed && (await b.box.check("g")).retryAfterMs === 30_000, { timeoutMs: 5000, message: "B drops the forgotten ban and holds the new one" });
  });

  test("on the system clock the ban keeps its end in Redis time", { timeout: 30_000 }, async () => {
    const a = await instance("t6", params);
    await stopRedis(a.store);
    const beforeBan = Date.now();
    await a.box.ban("w", 60_000);
    const afterBan = Date.now();
    // Longer than three of the store's call deadlines (1 s, see instance()), so the two outcomes below
    // are seconds apart whatever the load.
    const outageMs = 3000;
    await sleep(outageMs); // the outage lasts a while
    const back = Date.now();
    await startRedis();
    await waitUntil(() => a.store.mode === "redis" && a.box.pendingWriteBack === 0, { timeoutMs: 5000, message: "A recovered and wrote back" });
    const end = (await stored("t6", "w"))![5]!;
    // The end the ban had when it was made (between beforeBan and afterBan), carried over to Redis's
    // clock by the one call that wrote it back: its remaining time was taken when the call was sent, and
    // Redis ran the call within the call's 1 s deadline (a call past it fails and is retried with a fresh
    // remaining time). 20 ms for Redis TIME against this host's clock. No stall widens this bracket.
    const low = beforeBan + 60_000 - 20;
    const high = afterBan + 60_000 + 1000 + 20;
    assert.ok(end >= low && end <= high, `end ${end - beforeBan} ms after the ban, want [${low - beforeBan}, ${high - beforeBan}]`);
    // A new full ban made by the recovery would end at or after back + 60,000: at least outageMs - 1000 ms later.
    assert.ok(end < back + 60_000 - 20, `end ${end - beforeBan} ms after the ban: a new ban from the recovery, not the kept end`);
    // The check answers the kept end. It reads Redis time as this host's clock plus the skew measured on
    // the box's last call, which lags Redis by up to that call's round trip (at most its 1 s deadline), so
    // the wait is at most that much longer than what is left when the check is sent, and never shorter
    // than what is left when it returns (20 ms for Redis TIME against this host's clock, as above).
    const sent = Date.now();
    const d = await a.box.check("w");
    const returned = Date.now();
    const low2 = end - returned - 20;
    const high2 = end - sent + 1000 + 20;
    assert.ok(d.retryAfterMs >= low2 && d.retryAfterMs <= high2, `retryAfterMs ${d.retryAfterMs}, want [${low2}, ${high2}]`);
  });
});

describe("Redis failing again during the write-back", () => {
  test("nothing throws, the rest stays local and is written back on the next recovery, counted once", { timeout: 40_000 }, async () => {
    const clock = new ManualClock(50_000_000);
    const n = 300;
    const a = await instance("t4", { clock, ...params });
    await a.box.ban("re", 900_000);
    await stopRedis(a.store);
    const ends: number[] = [];
    for (let i = 0; i < n; i++) ends.push(await a.box.ban(`ip${i}`, 100_000 + i));
    // Forgotten and banned again: written back last, after the failure.
    await a.box.forget("re");
    const re = await a.box.ban("re", 50_000);
    clock.advance(1_000);
    assert.equal(a.box.pendingWriteBack, n + 2);

    // Redis hangs (SIGSTOP: it keeps its data and its connections but answers nothing) as the 100th
    // ban is written back, and stays hung until the test lets it go on (SIGCONT): the failure lasts
    // exactly as long as the test needs, however slowly the machine runs.
    const client = a.store.client as Redis;
    const send = client.evalsha.bind(client) as (...args: unknown[]) => Promise<unknown>;
    let restores = 0;
    let hungPid = 0;
    let failoversAtHang = -1;
    Object.assign(client, {
      evalsha: async (...args: unknown[]): Promise<unknown> => {
        const flat = args[2];
        if (Array.isArray(flat) && flat[1] === "restore" && ++restores === 100) {
          const pid = server.pid!;
          failoversAtHang = a.store.counters.failovers;
          process.kill(pid, "SIGSTOP");
          hungPid = pid;
        }
        return send(...args);
      },
    });
    const resume = (): void => {
      if (hungPid > 0) process.kill(hungPid, "SIGCONT");
    };

    try {
      // Not startRedis(): the write-back may hang Redis before the test's own admin client is back,
      // and that client is not needed until Redis resumes.
      await server.start();
      await waitUntil(() => hungPid > 0 && a.store.counters.failovers > failoversAtHang, { timeoutMs: 10_000, message: "the store failing again mid-write-back" });
      const left = a.box.pendingWriteBack;
      assert.ok(left >= n - 128 && left < n + 2, `${left} bans and forgets left local after the failure`);
      assert.ok(restores <= 128, `${restores} restores sent: rounds are bounded and stop at the failure`);
      // While Redis is hung, the store probes it but sends no more of the write-back.
      const sentAtFailure = restores;
      await sleep(300);
      assert.equal(restores, sentAtFailure, "no write-back round while Redis does not answer");
      assert.equal(a.box.pendingWriteBack, left);
      // While Redis is unavailable again, the bans still hold locally.
      assert.equal((await a.box.check(`ip${n - 1}`)).reason, "banned");
      assert.equal((await a.box.check("re")).retryAfterMs, 49_000);
    } finally {
      resume();
    }

    await waitUntil(() => a.store.mode === "redis" && a.box.pendingWriteBack === 0, { timeoutMs: 10_000, message: "the rest written back on the next recovery" });
    assert.ok(a.store.counters.recoveries >= 2);
    assert.equal(await admin.zcard(`${prefix}{t4}:bans`), n + 1);
    const states = await Promise.all(ends.map((_, i) => stored("t4", `ip${i}`)));
    for (let i = 0; i < n; i++) assert.deepEqual(states[i]?.slice(5), [ends[i], 1], `ip${i}`);
    assert.deepEqual((await stored("t4", "re"))?.slice(5), [re, 1], "the ban made after the forget");
    assert.deepEqual(unhandled.seen, []);
  });
});
