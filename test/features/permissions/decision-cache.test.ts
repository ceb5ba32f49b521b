import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../../src/core/clock.js";
import { DecisionCache } from "../../../src/features/permissions/decision-cache.js";

describe("DecisionCache", () => {
  test("entries live for the TTL on the injected clock", () => {
    const clock = new ManualClock();
    const c = new DecisionCache<string>({ clock, ttlMs: 1000, maxEntries: 10 });
    c.set("alice", "k1", "v1", c.generation);
    clock.advance(999);
    assert.equal(c.get("k1"), "v1");
    clock.advance(1);
    assert.equal(c.get("k1"), undefined);
    assert.equal(c.size, 0);
  });

  test("invalidating an identity drops exactly its entries", () => {
    const clock = new ManualClock();
    const c = new DecisionCache<string>({ clock, ttlMs: 1000, maxEntries: 10 });
    c.set("alice", "a1", "x", c.generation);
    c.set("alice", "a2", "x", c.generation);
    c.set("bob", "b1", "y", c.generation);
    c.invalidate("alice");
    assert.equal(c.get("a1"), undefined);
    assert.equal(c.get("a2"), undefined);
    assert.equal(c.get("b1"), "y");
  });

  test("a lookup that raced an invalidation is not stored", () => {
    const clock = new ManualClock();
    const c = new DecisionCache<string>({ clock, ttlMs: 1000, maxEntries: 10 });
    const gen = c.generation;
    c.invalidate("alice");
    assert.equal(c.set("alice", "a1", "stale", gen), false);
    assert.equal(c.get("a1"), undefined);
    assert.equal(c.set("alice", "a1", "fresh", c.generation), true);
  });

  test("is bounded: the least recently used entry is evicted", () => {
    const clock = new ManualClock();
    const c = new DecisionCache<number>({ clock, ttlMs: 10_000, maxEntries: 3 });
    for (let i = 0; i < 3; i++) c.set("id", `k${i}`, i, c.generation);
    assert.equal(c.get("k0"), 0); // k0 is now the most recently used
    c.set("id", "k3", 3, c.generation);
    assert.equal(c.size, 3);
    assert.equal(c.get("k1"), undefined);
    assert.equal(c.get("k0"), 0);
    for (let i = 0; i < 1000; i++) c.set(`id${i}`, `x${i}`, i, c.generation);
    assert.equal(c.size, 3);
  });

  test("a TTL of 0 caches nothing", () => {
    const c = new DecisionCache<number>({ clock: new ManualClock(), ttlMs: 0, maxEntries: 3 });
    assert.equal(c.set("id", "k", 1, c.generation), false);
    assert.equal(c.get("k"), undefined);
  });
});
