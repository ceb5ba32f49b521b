/**
 * The HTTP limiter on a shared store: two limiters, each with its own
 * Redis client (as two gateways would have), on one Redis and one key
 * prefix. Route limits, the fixed window's queue limit and the subject
 * lockout count across both. Counts, not timing: windows are a minute
 * long and every test starts well inside one (it waits for the next
 * minute when the current one is about to end).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { HttpLimiter, type Verdict } from "../../../src/features/http/http-limiter.js";
import type { HttpLimiterOptions, RequestInfo } from "../../../src/features/http/types.js";
import { MemoryStore } from "../../../src/stores/memory-store.js";
import { RedisStore } from "../../../src/stores/redis/redis-store.js";
import { REDIS_URL, deletePrefix, uniquePrefix } from "../../redis/helpers.js";
import { waitUntil, sleep } from "../../helpers/wait.js";

const prefix = uniquePrefix("http-shared");
const stores = [new RedisStore({ url: REDIS_URL, prefix, timeoutMs: 2000 }), new RedisStore({ url: REDIS_URL, prefix, timeoutMs: 2000 })];
const limiters: HttpLimiter[] = [];

before(async () => {
  for (const s of stores) assert.ok(await s.ready(), "Redis answers");
});

after(async () => {
  for (const l of limiters) l.dispose();
  await Promise.all(stores.map((s) => s.close()));
  await deletePrefix(prefix);
});

/** One limiter per store: the two "gateways". */
function pair(o: Omit<HttpLimiterOptions, "store">): [HttpLimiter, HttpLimiter] {
  const made = stores.map((store) => new HttpLimiter({ ...o, store })) as [HttpLimiter, HttpLimiter];
  limiters.push(...made);
  return made;
}

let seq = 0;
function req(path: string, ip = "203.0.113.7", body?: Record<string, string>): RequestInfo {
  return { method: "POST", url: path, headers: { "x-n": String(seq++) }, remoteAddress: ip, ...(body === undefined ? {} : { body }) };
}

/** Waits for the next minute when fewer than 15 s of this one are left, so a minute-long window holds the whole test. */
async function insideOneMinute(): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 15_000) await sleep(left + 100);
}

describe("the HTTP limiter on a shared store", () => {
  test("a decision on memory stays synchronous; on Redis it is a promise", async () => {
    const routes = [{ name: "token", match: "/token", limit: { algorithm: "fixed_window" as const, permitLimit: 5, windowMs: 60_000 } }];
    const mem = new HttpLimiter({ routes, store: new MemoryStore() });
    assert.equal(mem.sync, true);
    assert.ok(!(mem.decide(req("/token")) instanceof Promise));
    mem.dispose();
    const [a] = pair({ routes: [{ name: `sync-${seq}`, match: "/token", limit: { algorithm: "fixed_window", permitLimit: 5, windowMs: 60_000 } }] });
    const v = a.decide(req("/token"));
    assert.ok(v instanceof Promise);
    assert.equal((await v).allowed, true);
  });

  test("30 per minute across two instances: exactly 30 of 60 pass", { timeout: 30_000 }, async () => {
    await insideOneMinute();
    const [a, b] = pair({ routes: [{ name: "token30", match: "/token", limit: { algorithm: "fixed_window", permitLimit: 30, windowMs: 60_000 } }] });
    // In rounds of one request at each instance at once: the count is Redis's, not either instance's.
    const verdicts: Verdict[] = [];
    for (let i = 0; i < 30; i++) verdicts.push(...(await Promise.all([a.decide(req("/token")), b.decide(req("/token"))])));
    const passed = verdicts.filter((v) => v.allowed).length;
    assert.equal(passed, 30);
    const atA = verdicts.filter((v, i) => v.allowed && i % 2 === 0).length;
    assert.ok(atA > 0 && atA < 30, `both instances admitted some (${atA} at A, ${30 - atA} at B)`);
    const refused = verdicts.find((v) => !v.allowed)!;
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers["retry-after"]) > 0);
  });

  test("queue_limit counts the waiters of both instances together", { timeout: 30_000 }, async () => {
    await insideOneMinute();
    const [a, b] = pair({ routes: [{ name: "authq", match: "/authorize", limit: { algorithm: "fixed_window", permitLimit: 2, windowMs: 60_000, queueLimit: 3 } }] });
    assert.equal((await a.decide(req("/authorize"))).allowed, true);
    assert.equal((await b.decide(req("/authorize"))).allowed, true);
    const aborts: AbortController[] = [];
    const waiting: Promise<Verdict>[] = [];
    const enqueue = (l: HttpLimiter): Promise<Verdict> => {
      const ac = new AbortController();
      aborts.push(ac);
      const v = l.decide(req("/authorize"), () => ac.signal) as Promise<Verdict>;
      waiting.push(v);
      return v;
    };
    enqueue(a);
    enqueue(a);
    await waitUntil(() => a.queued === 2, { timeoutMs: 5000, message: "two waiting at A" });
    enqueue(b);
    await waitUntil(() => b.queued === 1, { timeoutMs: 5000, message: "one waiting at B" });
    // The queue holds 3 across both: a fourth at either instance is refused at once.
    const fullAtB = await b.decide(req("/authorize"));
    const fullAtA = await a.decide(req("/authorize"));
    for (const v of [fullAtA, fullAtB]) {
      assert.equal(v.allowed, false);
      assert.equal(v.status, 429);
    }
    assert.equal(a.queued + b.queued, 3, "nothing more queued");
    // A client at A leaves the queue: its place is free for B.
    aborts[0]!.abort();
    assert.equal((await waiting[0]!).aborted, true);
    const next = enqueue(b);
    await waitUntil(() => b.queued === 2, { timeoutMs: 5000, message: "B queues into the freed place" });
    assert.equal(a.queued + b.queued, 3);
    // Still full again.
    assert.equal((await a.decide(req("/authorize"))).status, 429);
    for (const ac of aborts) ac.abort();
    await Promise.all([...waiting, next]);
    assert.equal(a.queued + b.queued, 0);
  });

  test("a subject locked out through one instance is locked out at the other", { timeout: 30_000 }, async () => {
    const [a, b] = pair({
      lockout: { maxFailures: 3, windowMs: 60_000, durationMs: 60_000 },
      routes: [{ name: "login", match: "/login", limit: { algorithm: "fixed_window", permitLimit: 1000, windowMs: 60_000 }, lockout: { subject: "user" } }],
    });
    const user = `mallory-${seq}`;
    const login = (l: HttpLimiter): Promise<Verdict> => Promise.resolve(l.decide(req("/login", "198.51.100.9", { username: user })));
    assert.equal((await login(b)).allowed, true);
    await a.recordFailure(user);
    await b.recordFailure(user);
    assert.equal((await login(b)).allowed, true, "two failures do not lock");
    await a.recordFailure(user.toUpperCase());
    const v = await login(b);
    assert.equal(v.allowed, false, "the third failure, at A, locks the subject at B");
    assert.equal(v.status, 429);
    assert.match(v.body ?? "", /failed attempts/);
    assert.equal((await login(a)).allowed, false);
  });
});
