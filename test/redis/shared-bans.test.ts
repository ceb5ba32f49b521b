import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, describe, test } from "node:test";
import { RedisPenaltyBox, RedisStore } from "../../src/redis.js";
import { limitKey } from "../../src/stores/redis/key-names.js";
import { REDIS_URL, countCommands, deletePrefix, uniquePrefix } from "./helpers.js";
import { waitUntil, sleep } from "../helpers/wait.js";

const prefix = uniquePrefix("bans");
const checker = fileURLToPath(new URL("./fixtures/ban-check-worker.ts", import.meta.url));
const opened: { close(): Promise<void> }[] = [];

/** One gateway instance: its own store (own connections) and its box. */
async function instance(name: string, opts: Partial<ConstructorParameters<typeof RedisPenaltyBox>[0]> = {}): Promise<{ store: RedisStore; box: RedisPenaltyBox }> {
  const store = new RedisStore({ url: REDIS_URL, prefix, timeoutMs: 2000 });
  const box = new RedisPenaltyBox({ store, name, ...opts });
  opened.push(box, store);
  assert.ok(await store.ready());
  assert.ok(await box.start());
  return { store, box };
}

after(async () => {
  for (const c of opened) await c.close();
  await deletePrefix(prefix);
});

/** Milliseconds until `cond` holds, polling every few ms (bounded by 10 s: a loaded machine is slow, a missing push never comes). */
async function latency(cond: () => boolean): Promise<number> {
  const start = performance.now();
  await waitUntil(cond, { timeoutMs: 10_000, message: "propagation" });
  return performance.now() - start;
}

/**
 * Milliseconds until `cond` (a check of `receiver`'s local cache) holds,
 * asserting that `receiver` sent no command meanwhile: what it learned came
 * by the published message, not by asking Redis. That is the property, and it
 * holds however loaded the machine is; the latency itself is printed (on an
 * idle machine a few ms), and the wait is bounded well below anything a
 * reconnect or a restart would take.
 */
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

describe("shared bans", () => {
  test("a ban made on one instance is pushed to another (no command from it), and so is the unban", async (t) => {
    const a = await instance("propagate");
    const b = await instance("propagate");
    assert.equal(b.box.isBanned("10.0.0.1"), false);
    const until = await a.box.ban("10.0.0.1", 60_000);
    const seen = await pushed(b.store, () => b.box.isBanned("10.0.0.1"));
    t.diagnostic(`ban seen after ${seen.toFixed(1)} ms`);
    const d = await b.box.check("10.0.0.1");
    assert.equal(d.allowed, false);
    assert.equal(d.reason, "banned");
    assert.ok(d.retryAfterMs > 59_000 && d.retryAfterMs <= 60_000, `retryAfterMs ${d.retryAfterMs}`);
    assert.ok(until > 0);

    await a.box.forget("10.0.0.1");
    const lifted = await pushed(b.store, () => !b.box.isBanned("10.0.0.1"));
    t.diagnostic(`unban seen after ${lifted.toFixed(1)} ms`);
    assert.equal((await b.box.check("10.0.0.1")).allowed, true);
  });

  test("failures counted on different instances add up to a ban that every instance sees", async () => {
    const a = await instance("streak", { throttleAfter: 100, banFailures: 4, banWindowMs: 60_000, banDurationMs: 30_000 });
    const b = await instance("streak", { throttleAfter: 100, banFailures: 4, banWindowMs: 60_000, banDurationMs: 30_000 });
    assert.equal((await a.box.recordFailure("u:alice")).streak, 1);
    assert.equal((await b.box.recordFailure("u:alice")).streak, 2);
    assert.equal((await a.box.recordFailure("u:alice")).banned, false);
    const r = await b.box.recordFailure("u:alice");
    assert.equal(r.banned, true);
    assert.equal(r.streak, 4);
    await latency(() => a.box.isBanned("u:alice"));
    assert.equal((await a.box.check("u:alice")).reason, "banned");
  });

  test("back-off set on one instance throttles the key on another (read from Redis)", async () => {
    const a = await instance("throttle", { throttleAfter: 2, backoffBaseMs: 5_000, backoffMaxMs: 5_000, banFailures: 100 });
    const b = await instance("throttle", { throttleAfter: 2, backoffBaseMs: 5_000, backoffMaxMs: 5_000, banFailures: 100 });
    await a.box.recordFailure("k");
    assert.equal((await b.box.check("k")).allowed, true);
    await a.box.recordFailure("k");
    const d = await b.box.check("k");
    assert.equal(d.reason, "throttled");
    assert.ok(d.retryAfterMs > 4_000 && d.retryAfterMs <= 5_000);
    await b.box.recordSuccess("k");
    assert.equal((await a.box.check("k")).allowed, true);
  });

  test("bans survive a restarted instance: a new one loads them from Redis", async () => {
    const a = await instance("persist");
    await a.box.ban("192.0.2.7", 120_000);
    await a.box.ban("192.0.2.8", 1);
    // The instance goes away entirely (connections closed) ...
    await a.box.close();
    await a.store.close();
    await sleep(20);
    // ... and a new one starts: the live ban is there before any message arrives.
    const a2 = await instance("persist");
    assert.equal(a2.box.isBanned("192.0.2.7"), true);
    assert.equal(a2.box.isBanned("192.0.2.8"), false, "an ended ban is not loaded");
    const listed = await a2.box.banned();
    assert.deepEqual(listed.map((x) => x.key), ["192.0.2.7"]);
    const d = await a2.box.check("192.0.2.7");
    assert.equal(d.reason, "banned");
    assert.ok(d.retryAfterMs > 100_000);
  });
});

describe("shared bans across processes", () => {
  test("a gateway process started after the ban knows it at once", { timeout: 30_000 }, async () => {
    const a = await instance("process");
    await a.box.ban("198.51.100.9", 300_000);
    await a.box.close();
    await a.store.close();
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", checker, REDIS_URL, prefix, "process", "198.51.100.9"], {
      timeout: 20_000,
    });
    const r = JSON.parse(stdout.trim().split("\n").pop()!) as { started: boolean; banned: boolean; reason: string; retryAfterMs: number };
    assert.equal(r.started, true);
    assert.equal(r.banned, true);
    assert.equal(r.reason, "banned");
    assert.ok(r.retryAfterMs > 250_000 && r.retryAfterMs <= 300_000, `retryAfterMs ${r.retryAfterMs}`);
  });
});

describe("a lifted ban stays lifted in every instance's cache", () => {
  test("a reload that finds a lifted ban still in the index (it is removed after the lift) does not cache it again", async () => {
    const a = await instance("lift-reload");
    const b = await instance("lift-reload");
    const key = "10.0.9.1";
    await a.box.ban(key, 900_000);
    await latency(() => b.box.isBanned(key));
    await a.box.forget(key);
    await latency(() => !b.box.isBanned(key));
    // The index entry as it is between the lift and its removal (or after a late index write by the banning instance).
    const index = limitKey(prefix, "lift-reload", "bans");
    await b.store.client.zadd(index, Date.now() + 900_000, key);
    // A reload (here by the admin listing; also on every reconnect and return from an outage) reads that index.
    await b.box.banned();
    assert.equal(b.box.isBanned(key), false, "the lifted ban is not back in B's cache");
    assert.equal((await b.box.check(key)).allowed, true, "and B admits the key");
    // A ban made after the lift is cached as ever.
    await a.box.ban(key, 900_000);
    await latency(() => b.box.isBanned(key));
    assert.equal((await b.box.check(key)).allowed, false);
  });

  test("a lift whose instance goes away before anything else is sent does not come back at a gateway that starts later", async () => {
    const a = await instance("lift-gone");
    const key = "10.0.9.2";
    await a.box.ban(key, 900_000);
    // A's process dies right after Redis answered the lift: nothing it sends after that reply reaches Redis
    // (a fault that cannot be timed for real, so A's store drops it).
    let gone = false;
    const run = a.store.run.bind(a.store);
    const command = a.store.command.bind(a.store);
    a.store.run = async (script, keys, args) => {
      const reply = await run(script, keys, args);
      if (args[0] === "forget") gone = true;
      return reply;
    };
    a.store.command = async (send) => (gone ? undefined : command(send));
    assert.equal(await a.box.forget(key), true);
    assert.ok(gone, "the lift went through A's store");
    // A gateway that starts now loads the index of live bans.
    const c = await instance("lift-gone");
    assert.equal(c.box.isBanned(key), false, "the lifted ban is not in the new gateway's cache");
    assert.equal((await c.box.check(key)).allowed, true, "and it admits the key");
  });
});
