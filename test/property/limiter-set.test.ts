/**
 * A composite check is atomic: it allows exactly when every limit would
 * allow on its own, and then charges each limit as a plain check would;
 * when it rejects, no limit's state changes at all.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { type Decision, LimiterSet, ManualClock, MemoryStore, type RateLimitOptions, type RateLimiter, createLimiter } from "../../src/index.js";

const LIMITS: RateLimitOptions[] = [
  { algorithm: "gcra", rate: 5, burst: 3 },
  { algorithm: "sliding_window", limit: 4, windowMs: 700 },
  { algorithm: "fixed_window", permitLimit: 6, windowMs: 1000 },
];

type Command = { kind: "check"; keys: [string, string, string]; cost: number } | { kind: "advance"; ms: number };

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("check" as const),
      keys: fc.tuple(fc.constantFrom("ip1", "ip2"), fc.constantFrom("alice", "bob"), fc.constant("global")),
      cost: fc.integer({ min: 1, max: 5 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 800 }) }) },
);

const KEYS = [
  ["ip1", "ip2"],
  ["alice", "bob"],
  ["global"],
];

function state(limiters: RateLimiter[]): unknown {
  return limiters.map((l, i) =>
    KEYS[i]!.map((k) =>
      [1, 2, 3].map((c) => {
        const d: Decision = l.peek(k, c);
        return [d.allowed, d.remaining, d.resetMs, d.retryAfterMs];
      }),
    ),
  );
}

describe("limiter set is atomic", () => {
  test("allows iff every limit would, charges all or none, and matches limits checked one by one", () => {
    fc.assert(
      fc.property(fc.array(commandArb, { maxLength: 80 }), (commands) => {
        const clock = new ManualClock(0);
        const make = () => {
          const store = new MemoryStore();
          return LIMITS.map((o, i) => createLimiter({ ...o, name: `l${i}`, clock, store }));
        };
        const limiters = make();
        const twins = make();
        const set = new LimiterSet(limiters);
        for (const cmd of commands) {
          if (cmd.kind === "advance") {
            clock.advance(cmd.ms);
            continue;
          }
          const wouldAllow = limiters.map((l, i) => l.peek(cmd.keys[i]!, cmd.cost).allowed);
          const before = state(limiters);
          const r = set.check(cmd.keys, cmd.cost);
          assert.equal(r.allowed, wouldAllow.every(Boolean));
          if (r.allowed) {
            twins.forEach((t, i) => assert.equal(t.check(cmd.keys[i]!, cmd.cost).allowed, true));
          } else {
            assert.equal(r.rejectedBy, `l${wouldAllow.indexOf(false)}`);
            assert.deepEqual(state(limiters), before, "a rejected composite check changes nothing");
          }
          assert.deepEqual(state(limiters), state(twins));
        }
      }),
      { numRuns: 200 },
    );
  });
});
