import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidArgumentError, LimiterSet, ManualClock, MemoryStore, type RateLimiter, createLimiter } from "../../src/index.js";

function three(clock: ManualClock) {
  const store = new MemoryStore();
  const perIp = createLimiter({ name: "ip", algorithm: "gcra", rate: 10, burst: 5, clock, store });
  const perUser = createLimiter({ name: "user", algorithm: "sliding_window", limit: 4, windowMs: 1000, clock, store });
  const global = createLimiter({ name: "global", algorithm: "fixed_window", permitLimit: 3, windowMs: 1000, clock, store });
  return { perIp, perUser, global, set: new LimiterSet([perIp, perUser, global]) };
}

/** Everything observable about a key in a limit, without consuming. */
function snapshot(l: RateLimiter, key: string): unknown {
  return [1, 2, 3, 5].map((c) => {
    const d = l.peek(key, c);
    return [d.allowed, d.remaining, d.resetMs, d.retryAfterMs, d.reason];
  });
}

describe("limiter set", () => {
  test("allowed only when every limit allows, and then each one is charged", () => {
    const clock = new ManualClock(0);
    const { perIp, perUser, global, set } = three(clock);
    const r = set.check(["1.2.3.4", "alice", "all"]);
    assert.equal(r.allowed, true);
    assert.equal(r.retryAfterMs, 0);
    assert.deepEqual(r.decisions.map((d) => d.remaining), [4, 3, 2]);
    assert.equal(perIp.peek("1.2.3.4").remaining, 4);
    assert.equal(perUser.peek("alice").remaining, 3);
    assert.equal(global.peek("all").remaining, 2);
  });

  test("when one of three limits rejects, the other two keep their state exactly as before the call", () => {
    const clock = new ManualClock(100);
    const { perIp, perUser, global, set } = three(clock);
    // Drain the global limit through other keys so that it is the one to reject.
    for (let i = 0; i < 3; i++) set.check([`10.0.0.${i}`, `u${i}`, "all"]);
    set.check(["1.2.3.4", "alice", "other-global"]);
    const before = [snapshot(perIp, "1.2.3.4"), snapshot(perUser, "alice"), snapshot(global, "all")];
    const r = set.check(["1.2.3.4", "alice", "all"]);
    assert.equal(r.allowed, false);
    assert.equal(r.rejectedBy, "global");
    assert.equal(r.retryAfterMs, 900);
    assert.deepEqual([snapshot(perIp, "1.2.3.4"), snapshot(perUser, "alice"), snapshot(global, "all")], before);
  });

  test("a rejection by the first or the middle limit charges none of them", () => {
    const clock = new ManualClock(0);
    const { perIp, perUser, global, set } = three(clock);
    for (let i = 0; i < 4; i++) perUser.check("bob");
    const before = [snapshot(perIp, "ip"), snapshot(perUser, "bob"), snapshot(global, "all")];
    const middle = set.check(["ip", "bob", "all"]);
    assert.equal(middle.rejectedBy, "user");
    assert.equal(middle.decisions.length, 2, "limits after the rejecting one are not checked");
    assert.deepEqual([snapshot(perIp, "ip"), snapshot(perUser, "bob"), snapshot(global, "all")], before);
    const big = set.check(["ip", "carol", "all"], 6);
    assert.equal(big.rejectedBy, "ip");
    assert.equal(big.decisions[0]!.reason, "insufficient_capacity");
  });

  test("bad input is refused before any limit is charged", () => {
    const clock = new ManualClock(0);
    const { perIp, set } = three(clock);
    const before = snapshot(perIp, "ip");
    assert.throws(() => set.check(["ip", 42 as unknown as string, "all"]), (e: unknown) => e instanceof InvalidArgumentError && e.param === "keys[1]");
    assert.deepEqual(snapshot(perIp, "ip"), before);
    assert.throws(() => set.check(["ip", "u"]), (e: unknown) => e instanceof InvalidArgumentError && e.param === "keys");
    assert.throws(() => set.check(["ip", "u", "all"], 0), (e: unknown) => e instanceof InvalidArgumentError && e.param === "cost");
    assert.throws(() => new LimiterSet([]), InvalidArgumentError);
  });

  test("a shadowed limit that would reject does not block the set", () => {
    const clock = new ManualClock(0);
    const store = new MemoryStore();
    const strict = createLimiter({ name: "strict", algorithm: "fixed_window", permitLimit: 1, windowMs: 1000, clock, store, shadow: true });
    const loose = createLimiter({ name: "loose", algorithm: "fixed_window", permitLimit: 10, windowMs: 1000, clock, store });
    const set = new LimiterSet([strict, loose]);
    set.check(["k", "k"]);
    const r = set.check(["k", "k"]);
    assert.equal(r.allowed, true);
    assert.equal(r.decisions[0]!.shadowed, true);
    assert.equal(loose.peek("k").remaining, 8);
  });
});

describe("limiter set with a queued limit", () => {
  test("a rejection elsewhere undoes a newest-first newcomer's permit, and nothing else", async () => {
    const clock = new ManualClock(0);
    const store = new MemoryStore();
    const queued = createLimiter({ name: "q", algorithm: "fixed_window", permitLimit: 4, windowMs: 1000, queueLimit: 6, queueOrder: "newest_first", clock, store });
    const strict = createLimiter({ name: "strict", algorithm: "fixed_window", permitLimit: 1, windowMs: 1000, clock, store });
    const set = new LimiterSet([queued, strict]);
    await queued.acquire("k", 1);
    const waiter = queued.acquire("k", 4); // does not fit: waits for the next window
    strict.check("s");
    const before = snapshot(queued, "k");
    const r = set.check(["k", "s"]);
    assert.equal(r.rejectedBy, "strict");
    assert.equal(r.decisions[0]!.allowed, true, "the newcomer took a free permit of the queued limit");
    assert.deepEqual(snapshot(queued, "k"), before, "and gave it back when the set rejected");
    clock.advance(1000);
    assert.equal((await waiter).allowed, true);
    assert.equal(queued.peek("k").remaining, 0);
  });
});
