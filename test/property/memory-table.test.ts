/**
 * The memory table against a plain LRU model (a Map in recency order): random
 * inserts, touches, deletes, expiries and clears. Order, contents, state and
 * the eviction/reclaim counters must match after every step.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { MemoryTable } from "../../src/index.js";

type Command =
  | { kind: "use"; key: number; expiresIn: number | undefined }
  | { kind: "delete"; key: number }
  | { kind: "advance"; ms: number }
  | { kind: "clear" };

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({ kind: fc.constant("use" as const), key: fc.nat(40), expiresIn: fc.option(fc.integer({ min: 0, max: 50 }), { nil: undefined }) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("delete" as const), key: fc.nat(40) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 30 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: "clear" as const }) },
);

/** LRU with lazy expiry: an insert first drops up to two expired least-recent keys, then the least recent if full. */
class LruModel {
  /** Least recent first. Value: expiry time. */
  readonly entries = new Map<string, number>();
  evictions = 0;
  reclaims = 0;
  constructor(readonly maxKeys: number) {}

  use(key: string, now: number): void {
    if (this.entries.has(key)) {
      const v = this.entries.get(key)!;
      this.entries.delete(key);
      this.entries.set(key, v);
      return;
    }
    for (let i = 0; i < 2; i++) {
      const oldest = this.entries.entries().next();
      if (oldest.done || !(oldest.value[1] <= now)) break;
      this.entries.delete(oldest.value[0]);
      this.reclaims++;
    }
    if (this.entries.size >= this.maxKeys) {
      this.entries.delete(this.entries.keys().next().value!);
      this.evictions++;
    }
    this.entries.set(key, Infinity);
  }
}

describe("memory table matches an LRU model", () => {
  test("recency order, contents, state, evictions and reclaims", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.array(commandArb, { maxLength: 300 }), (maxKeys, commands) => {
        const table = new MemoryTable({
          width: 2,
          maxKeys,
          init: (s, o) => {
            s[o] = Infinity;
            s[o + 1] = 0;
          },
          isIdle: (s, o, now) => s[o]! <= now,
        });
        const model = new LruModel(maxKeys);
        let now = 0;
        let stamp = 0;
        const stamps = new Map<string, number>();
        for (const cmd of commands) {
          if (cmd.kind === "advance") now += cmd.ms;
          else if (cmd.kind === "clear") {
            table.clear();
            model.entries.clear();
            stamps.clear();
          } else if (cmd.kind === "delete") {
            const k = `k${cmd.key}`;
            assert.equal(table.delete(k), model.entries.delete(k));
            stamps.delete(k);
          } else {
            const k = `k${cmd.key}`;
            const existed = model.entries.has(k);
            const slot = table.slot(k, now);
            model.use(k, now);
            if (!existed) {
              assert.equal(table.state[slot * 2 + 1], 0, "a new key starts from init, not from a previous key's state");
              stamps.set(k, ++stamp);
              table.state[slot * 2 + 1] = stamp;
            }
            if (cmd.expiresIn !== undefined) {
              table.state[slot * 2] = now + cmd.expiresIn;
              model.entries.set(k, now + cmd.expiresIn);
            }
          }
          for (const k of [...stamps.keys()]) if (!model.entries.has(k)) stamps.delete(k);
          assert.deepEqual([...table.keysByRecency()], [...model.entries.keys()].reverse());
          assert.equal(table.size, model.entries.size);
          assert.ok(table.size <= maxKeys);
          assert.equal(table.evictions, model.evictions);
          assert.equal(table.reclaims, model.reclaims);
          for (const [k, exp] of model.entries) {
            const slot = table.find(k);
            assert.ok(slot >= 0);
            assert.equal(table.state[slot * 2], exp, `expiry of ${k}`);
            assert.equal(table.state[slot * 2 + 1], stamps.get(k), `a key's state is its own, never another key's (${k})`);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
