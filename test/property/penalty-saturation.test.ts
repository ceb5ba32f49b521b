/**
 * The penalty box under a full table: whatever the sequence, size stays
 * within the cap; a newcomer is always tracked; a stale entry is dropped
 * before any live one (and then the box is not saturated); otherwise the
 * live entry dropped has the lowest streak, the least recently active
 * among equals.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { ManualClock, PenaltyBox } from "../../src/index.js";

const KEYS = Array.from({ length: 10 }, (_, i) => `k${i}`);
const MAX_KEYS = 5;
const RETENTION = 1000;

type Command = { kind: "failure"; key: string } | { kind: "success"; key: string } | { kind: "advance"; ms: number };

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant("failure" as const), key: fc.constantFrom(...KEYS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("success" as const), key: fc.constantFrom(...KEYS) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 600 }) }) },
);

describe("penalty box saturation", () => {
  test("cap, newcomer tracking, stale first, then lowest streak (oldest first)", () => {
    fc.assert(
      fc.property(fc.array(commandArb, { maxLength: 200 }), (commands) => {
        const clock = new ManualClock(0);
        // No bans here: a ban extends an entry's life past its last failure, tested in the unit tests.
        const box = new PenaltyBox({ clock, maxKeys: MAX_KEYS, retentionMs: RETENTION, banFailures: 1_000_000 });
        // What the test knows: last activity of each tracked key.
        const lastActive = new Map<string, number>();
        for (const cmd of commands) {
          if (cmd.kind === "advance") {
            clock.advance(cmd.ms);
            continue;
          }
          if (cmd.kind === "success") {
            box.recordSuccess(cmd.key);
            lastActive.delete(cmd.key);
            continue;
          }
          const now = clock.now();
          const tracked = [...lastActive.keys()];
          const live = tracked.filter((k) => now - lastActive.get(k)! < RETENTION);
          const streaks = new Map(tracked.map((k) => [k, box.status(k).streak]));
          const isNew = !lastActive.has(cmd.key);
          const full = tracked.length >= MAX_KEYS;
          const r = box.recordFailure(cmd.key);
          assert.equal(r.streak, (streaks.get(cmd.key) ?? 0) + 1, "the newcomer (or known key) is tracked");
          assert.ok(box.size <= MAX_KEYS);
          lastActive.set(cmd.key, now);
          if (!isNew || !full) {
            assert.equal(r.saturated, false);
            continue;
          }
          const activeBefore = new Map(lastActive);
          const gone = tracked.find((k) => box.quietAt(k) === -Infinity)!;
          assert.ok(gone !== undefined, "exactly one entry made room");
          lastActive.delete(gone);
          if (live.length < tracked.length) {
            assert.equal(r.saturated, false, "a stale entry existed");
            assert.ok(!live.includes(gone), "a stale entry goes first");
          } else {
            assert.equal(r.saturated, true);
            const g = streaks.get(gone)!;
            for (const k of live) {
              if (k === gone) continue;
              const s = streaks.get(k)!;
              const olderOrSame = activeBefore.get(gone)! <= activeBefore.get(k)!;
              assert.ok(g < s || (g === s && olderOrSame), `dropped ${gone} (streak ${g}) while ${k} has streak ${s}`);
            }
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
