/**
 * The fixed-window queue against its reference model: random acquisitions
 * (some cancelled later), plain checks and clock moves on a few keys, in both
 * queue orders. Every call must settle the same way, at the same step.
 */
import { knownScenarios, scenarioArb } from "./queue-commands.js";
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { AcquireAbortedError, ManualClock, MemoryStore, createLimiter } from "../../src/index.js";
import { FixedWindowQueueModel, type QueueOutcome } from "./models.js";

const scenarios = scenarioArb();

const flush = () => new Promise<void>((r) => setImmediate(r));

describe("fixed-window queue matches its reference model", () => {
  test("admission order, queue limits, cancellation and plain checks", async () => {
    await fc.assert(
      fc.asyncProperty(scenarios, async ({ p, commands }) => {
        const clock = new ManualClock(p.start);
        const limiter = createLimiter({ algorithm: "fixed_window", permitLimit: p.permitLimit, windowMs: 1000, queueLimit: p.queueLimit, queueOrder: p.order, clock, store: new MemoryStore() });
        // Settlements per key, in order ("step:id:outcome"); across keys the order within a step is free.
        const got: Record<string, string[]> = { a: [], b: [] };
        const want: Record<string, string[]> = { a: [], b: [] };
        const keyOf: string[] = [];
        let step = 0;
        const model = new FixedWindowQueueModel(p.permitLimit, 1000, p.queueLimit, p.order, (id, o) => want[keyOf[id]!]!.push(`${step}:${id}:${o}`));
        const pending: { id: number; key: string; abort: AbortController }[] = [];
        let nextId = 0;
        for (const cmd of commands) {
          step++;
          if (cmd.kind === "advance") {
            clock.advance(cmd.ms);
            model.advance(clock.now());
          } else if (cmd.kind === "check") {
            const d = limiter.check(cmd.key, cmd.cost);
            const outcome: QueueOutcome = d.allowed ? "ok" : (d.reason as QueueOutcome);
            assert.equal(outcome, model.check(cmd.key, cmd.cost, clock.now()), `step ${step}: check(${cmd.key}, ${cmd.cost})`);
          } else if (cmd.kind === "checkThenRetry") {
            // Retry-After is exact: peek says so, 1 ms early is still too early, and waiting it out passes.
            const peeked = limiter.peek(cmd.key, cmd.cost);
            const d = limiter.check(cmd.key, cmd.cost);
            assert.deepEqual([peeked.allowed, peeked.reason, peeked.retryAfterMs], [d.allowed, d.reason, d.retryAfterMs], "peek answers as check");
            assert.equal(d.allowed ? "ok" : d.reason, model.check(cmd.key, cmd.cost, clock.now()));
            if (d.reason === "rate_limited") {
              clock.advance(d.retryAfterMs - 1);
              model.advance(clock.now());
              assert.equal(limiter.peek(cmd.key, cmd.cost).allowed, false, "1 ms before Retry-After");
              clock.advance(1);
              model.advance(clock.now());
              assert.equal(limiter.check(cmd.key, cmd.cost).allowed, true, `after Retry-After ${d.retryAfterMs}`);
              assert.equal(model.check(cmd.key, cmd.cost, clock.now()), "ok");
            }
          } else if (cmd.kind === "acquire") {
            const id = nextId++;
            keyOf[id] = cmd.key;
            const abort = new AbortController();
            pending.push({ id, key: cmd.key, abort });
            limiter.acquire(cmd.key, cmd.cost, { signal: abort.signal }).then(
              (d) => got[cmd.key]!.push(`${step}:${id}:${d.allowed ? "ok" : d.reason}`),
              (e: unknown) => got[cmd.key]!.push(`${step}:${id}:${e instanceof AcquireAbortedError ? "aborted" : "error"}`),
            );
            model.acquire(cmd.key, id, cmd.cost, clock.now());
          } else if (pending.length > 0) {
            const w = pending[cmd.pick % pending.length]!;
            w.abort.abort();
            model.cancel(w.key, w.id);
          }
          await flush();
          assert.deepEqual(got, want, `after step ${step}: got ${JSON.stringify(got)}, model ${JSON.stringify(want)}`);
        }
        limiter.dispose();
        await flush();
      }),
      { numRuns: 150, examples: knownScenarios },
    );
  });
});
