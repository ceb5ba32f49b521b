/**
 * A composite check is atomic: it allows exactly when every limit would
 * allow on its own, and then charges each limit as a plain check would;
 * when it rejects, no limit's state changes at all.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { type Decision, LimiterSet, ManualClock, type RateLimitOptions, type RateLimiter, createLimiter } from "../../src/index.js";
import { forEachStore } from "./stores.js";

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

async function state(limiters: RateLimiter<boolean>[]): Promise<unknown> {
  const out: unknown[] = [];
  for (let i = 0; i < limiters.length; i++) {
    for (const k of KEYS[i]!) {
      for (const c of [1, 2, 3]) {
        const d: Decision = await limiters[i]!.peek(k, c);
        out.push([d.allowed, d.remaining, d.resetMs, d.retryAfterMs]);
      }
    }
  }
  return out;
}

forEachStore((t) => {
describe("limiter set is atomic", () => {
  test("allows iff every limit would, charges all or none, and matches limits checked one by one", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(commandArb, { maxLength: 80 }), async (commands) => {
        const clock = new ManualClock(0);
        const make = () => {
          const store = t.store();
          return LIMITS.map((o) => createLimiter({ ...o, name: t.name(), clock, store })) as RateLimiter<boolean>[];
        };
        const limiters = make();
        const twins = make();
        const set = new LimiterSet(limiters as RateLimiter<false>[]);
        for (const cmd of commands) {
          if (cmd.kind === "advance") {
            clock.advance(cmd.ms);
            continue;
          }
          const wouldAllow: boolean[] = [];
          for (let i = 0; i < limiters.length; i++) wouldAllow.push((await limiters[i]!.peek(cmd.keys[i]!, cmd.cost)).allowed);
          const before = await state(limiters);
          const r = await set.check(cmd.keys, cmd.cost);
          assert.equal(r.allowed, wouldAllow.every(Boolean));
          if (r.allowed) {
            for (let i = 0; i < twins.length; i++) assert.equal((await twins[i]!.check(cmd.keys[i]!, cmd.cost)).allowed, true);
          } else {
            assert.equal(r.rejectedBy, limiters[wouldAllow.indexOf(false)]!.name);
            assert.deepEqual(await state(limiters), before, "a rejected composite check changes nothing");
          }
          assert.deepEqual(await state(limiters), await state(twins));
        }
        t.answered();
      }),
      { numRuns: t.runs(200) },
    );
  });
});
});
