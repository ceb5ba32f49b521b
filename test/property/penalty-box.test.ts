/**
 * The penalty box against its reference model: random failures, successes,
 * checks and clock moves on a few keys, with small parameters so that
 * back-off, bans, repeat bans and retention all happen within a run.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { ManualClock, PenaltyBox } from "../../src/index.js";
import { forEachStore } from "./stores.js";
import { PenaltyModel, type PenaltyModelParams } from "./models.js";

type Command =
  | { kind: "failure"; key: string }
  | { kind: "success"; key: string }
  | { kind: "check"; key: string }
  | { kind: "advance"; ms: number }
  | { kind: "back"; ms: number };

const keyArb = fc.constantFrom("a", "b", "c");
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant("failure" as const), key: keyArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("success" as const), key: keyArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("check" as const), key: keyArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 400 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 400, max: 6000 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("back" as const), ms: fc.integer({ min: 1, max: 500 }) }) },
);

const paramsArb: fc.Arbitrary<PenaltyModelParams> = fc.record({
  throttleAfter: fc.integer({ min: 1, max: 5 }),
  backoffBaseMs: fc.integer({ min: 0, max: 50 }),
  backoffMaxMs: fc.integer({ min: 0, max: 400 }),
  banFailures: fc.integer({ min: 1, max: 8 }),
  banWindowMs: fc.integer({ min: 1, max: 2000 }),
  banDurationMs: fc.integer({ min: 0, max: 1500 }),
  banMultiplier: fc.constantFrom(1, 1.5, 2, 3),
  banMaxMs: fc.integer({ min: 0, max: 5000 }),
  retentionMs: fc.integer({ min: 1, max: 3000 }),
});

forEachStore((t) => {
describe("penalty box matches its reference model", () => {
  test("streaks, back-off, bans, repeat bans, success and retention", async () => {
    await fc.assert(
      fc.asyncProperty(paramsArb, fc.array(commandArb, { maxLength: 200 }), async (params, commands) => {
        const clock = new ManualClock(10_000);
        const box = new PenaltyBox({ ...params, clock, maxKeys: 16, store: t.store(), name: t.name() });
        const model = new PenaltyModel(params);
        for (const cmd of commands) {
          if (cmd.kind === "advance") clock.advance(cmd.ms);
          else if (cmd.kind === "back") clock.set(clock.now() - cmd.ms);
          else if (cmd.kind === "success") {
            await box.recordSuccess(cmd.key);
            model.success(cmd.key);
          } else if (cmd.kind === "failure") {
            const got = await box.recordFailure(cmd.key);
            const want = model.failure(cmd.key, clock.now());
            assert.deepEqual(
              { streak: got.streak, throttledUntil: got.throttledUntil, bannedUntil: got.bannedUntil, bans: got.bans, banned: got.banned },
              want,
            );
            assert.equal(got.saturated, false);
          } else {
            const got = await box.check(cmd.key);
            const want = model.check(cmd.key, clock.now());
            assert.deepEqual({ allowed: got.allowed, reason: got.reason, retryAfterMs: got.retryAfterMs }, want);
          }
          for (const k of ["a", "b", "c"]) {
            const st = await box.status(k);
            assert.deepEqual({ ...st }, model.view(k, clock.now()), `status(${k})`);
          }
        }
        t.answered();
      }),
      { numRuns: t.runs(300) },
    );
  });
});
});
