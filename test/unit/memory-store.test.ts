import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ManualClock, MemoryStore, MemoryTable, createLimiter } from "../../src/index.js";

/** A table whose single number of state is an expiry time: idle once the clock passes it. */
function expiringTable(maxKeys: number): MemoryTable {
  return new MemoryTable({
    width: 1,
    maxKeys,
    init: (s, o) => {
      s[o] = Infinity;
    },
    isIdle: (s, o, now) => s[o]! <= now,
  });
}

describe("memory store", () => {
  test("the cap holds under 2,000,000 distinct keys (size never exceeds maxKeys)", () => {
    const clock = new ManualClock(0);
    const store = new MemoryStore({ maxKeys: 10_000 });
    const limiter = createLimiter({ algorithm: "gcra", rate: 10, burst: 10, clock, store });
    let max = 0;
    for (let i = 0; i < 2_000_000; i++) {
      limiter.check(`k${i}`);
      if (limiter.size > max) max = limiter.size;
    }
    assert.equal(max, 10_000);
    assert.equal(store.size, 10_000);
    assert.equal(limiter.check("k1999999").remaining, 8, "the most recent key kept its state");
    assert.equal(limiter.peek("k0").remaining, 10, "the first key was evicted");
  });

  test("eviction order is least recently used; a check refreshes a key, a peek does not", () => {
    const clock = new ManualClock(0);
    const store = new MemoryStore({ maxKeys: 3 });
    const limiter = createLimiter({ algorithm: "fixed_window", permitLimit: 5, windowMs: 60_000, clock, store });
    for (const k of ["a", "b", "c"]) limiter.check(k);
    limiter.check("a"); // a is now the most recent; b is the least
    limiter.peek("b");
    limiter.check("d"); // evicts b
    assert.equal(limiter.peek("a").remaining, 3);
    assert.equal(limiter.peek("b").remaining, 5, "b was evicted");
    assert.equal(limiter.peek("c").remaining, 4);
    assert.equal(limiter.peek("d").remaining, 4);
  });

  test("LRU order of the table itself", () => {
    const t = expiringTable(3);
    for (const k of ["a", "b", "c"]) t.slot(k, 0);
    t.slot("a", 0);
    assert.deepEqual([...t.keysByRecency()], ["a", "c", "b"]);
    t.slot("d", 0);
    assert.deepEqual([...t.keysByRecency()], ["d", "a", "c"]);
    assert.equal(t.evictions, 1);
    t.delete("a");
    assert.deepEqual([...t.keysByRecency()], ["d", "c"]);
  });

  test("TTL expiry is lazy, with no timer per key: idle keys are reclaimed by later inserts", () => {
    const clock = new ManualClock(0);
    const store = new MemoryStore({ maxKeys: 1000 });
    const limiter = createLimiter({ algorithm: "fixed_window", permitLimit: 1, windowMs: 1000, clock, store });
    for (let i = 0; i < 500; i++) limiter.check(`old${i}`);
    assert.equal(clock.pendingTimers(), 0, "no timers at all");
    clock.advance(5000);
    for (let i = 0; i < 500; i++) limiter.check(`new${i}`);
    assert.ok(limiter.size < 1000, `idle keys were reclaimed (size ${limiter.size})`);
    // A reclaimed key reads exactly as fresh.
    assert.equal(limiter.peek("old0").remaining, 1);
  });

  test("an idle key is reclaimed rather than a live one evicted", () => {
    const t = expiringTable(2);
    t.state[t.slot("short", 0)] = 10;
    t.state[t.slot("long", 0)] = 1_000_000;
    t.slot("long", 0); // most recent: "short" is the LRU and idle at t=50
    t.slot("newcomer", 50);
    assert.equal(t.find("short"), -1);
    assert.notEqual(t.find("long"), -1);
    assert.equal(t.evictions, 0);
    assert.equal(t.reclaims, 1);
  });

  test("two store instances share nothing", () => {
    const clock = new ManualClock(0);
    const s1 = new MemoryStore();
    const s2 = new MemoryStore();
    const l1 = createLimiter({ name: "login", algorithm: "gcra", rate: 1, burst: 1, clock, store: s1 });
    const l2 = createLimiter({ name: "login", algorithm: "gcra", rate: 1, burst: 1, clock, store: s2 });
    assert.equal(l1.check("k").allowed, true);
    assert.equal(l1.check("k").allowed, false);
    assert.equal(l2.check("k").allowed, true, "the same limit name in another store is another limit");
    assert.equal(s1.size, 1);
    assert.equal(s2.size, 1);
  });

  test("limits of different names in one store are separate; the same name with another algorithm is refused", () => {
    const clock = new ManualClock(0);
    const store = new MemoryStore();
    const a = createLimiter({ name: "a", algorithm: "gcra", rate: 1, burst: 1, clock, store });
    const b = createLimiter({ name: "b", algorithm: "gcra", rate: 1, burst: 1, clock, store });
    a.check("k");
    assert.equal(b.check("k").allowed, true);
    assert.throws(() => createLimiter({ name: "a", algorithm: "sliding_window", limit: 1, windowMs: 1000, clock, store }), /name/);
  });
});
