/**
 * The ban cache's lift marks: a read begun before a lift cannot put the
 * lifted ban back, a reload leaves out keys lifted lately, a ban heard after
 * the lift is cached as ever, and the marks are bounded.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BanCache } from "../../src/stores/ban-cache.js";

const NOW = 1_000;
const LATER = 900_000;

describe("BanCache lift marks", () => {
  test("a read begun before a lift of its key is not cached; one begun after it is", () => {
    const c = new BanCache(100);
    const before = c.mark();
    c.lift("k");
    assert.equal(c.learn("k", LATER, before), false);
    assert.equal(c.until("k", NOW), undefined, "the lifted ban stays out");
    assert.equal(c.learn("k", LATER, c.mark()), true);
    assert.equal(c.until("k", NOW), LATER);
  });

  test("a lift of another key does not stop a read from being cached", () => {
    const c = new BanCache(100);
    const before = c.mark();
    c.lift("other");
    assert.equal(c.learn("k", LATER, before), true);
    assert.equal(c.until("k", NOW), LATER);
  });

  test("a ban event after the lift is newer than it: cached, and later reads of the key are cached again", () => {
    const c = new BanCache(100);
    const before = c.mark();
    c.lift("k");
    c.set("k", LATER);
    assert.equal(c.until("k", NOW), LATER);
    assert.equal(c.learn("k", LATER + 1, before), true, "the mark was cleared by the newer ban");
    assert.equal(c.liftedLately("k"), false);
  });

  test("a reload leaves out keys lifted lately and keeps the others", () => {
    const c = new BanCache(100);
    c.set("a", LATER);
    c.lift("b");
    c.replace([
      ["a", LATER],
      ["b", LATER],
      ["c", LATER],
    ]);
    assert.deepEqual([...c.entries(NOW)].map(([k]) => k).sort(), ["a", "c"]);
  });

  test("the marks are bounded: the oldest is forgotten first", () => {
    const c = new BanCache(100, 3);
    for (const k of ["k1", "k2", "k3", "k4"]) c.lift(k);
    assert.equal(c.liftedLately("k1"), false);
    assert.deepEqual(["k2", "k3", "k4"].map((k) => c.liftedLately(k)), [true, true, true]);
  });
});
