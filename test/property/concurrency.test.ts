/**
 * The concurrency limiter against its reference model: random acquires,
 * releases (including repeated ones), renewals and clock moves on a few keys.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { ConcurrencyLimiter, type Lease, ManualClock } from "../../src/index.js";
import { forEachStore } from "./stores.js";
import { ConcurrencyModel } from "./models.js";

type Command =
  | { kind: "acquire"; key: string }
  | { kind: "release"; handle: number }
  | { kind: "renew"; handle: number }
  | { kind: "advance"; ms: number }
  | { kind: "back"; ms: number };

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("acquire" as const), key: fc.constantFrom("a", "b", "c") }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("release" as const), handle: fc.nat(40) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("renew" as const), handle: fc.nat(40) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 300 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("back" as const), ms: fc.integer({ min: 1, max: 300 }) }) },
);

const scenarioArb = fc.record({
  limit: fc.integer({ min: 1, max: 5 }),
  ttl: fc.option(fc.integer({ min: 1, max: 500 }), { nil: undefined }),
  commands: fc.array(commandArb, { maxLength: 150 }),
});

forEachStore((t) => {
describe("concurrency limiter matches its reference model", () => {
  test("acquire decisions, held counts, idempotent release and lease expiry", async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async ({ limit, ttl, commands }) => {
        const clock = new ManualClock(1000);
        const limiter = new ConcurrencyLimiter({ limit, ...(ttl === undefined ? {} : { leaseTtlMs: ttl }), clock, store: t.store(), name: t.name() });
        const model = new ConcurrencyModel(limit, ttl ?? Infinity);
        const handles: { lease: Lease<boolean>; id: number; key: string }[] = [];
        let nextId = 1;
        for (const cmd of commands) {
          if (cmd.kind === "advance") clock.advance(cmd.ms);
          else if (cmd.kind === "back") clock.set(clock.now() - cmd.ms);
          else if (cmd.kind === "acquire") {
            const id = nextId++;
            const want = model.acquire(cmd.key, id, clock.now());
            const got = await limiter.tryAcquire(cmd.key);
            assert.deepEqual(
              { allowed: got.decision.allowed, remaining: got.decision.remaining, retryAfterMs: got.decision.retryAfterMs, reason: got.decision.reason },
              { allowed: want.allowed, remaining: want.remaining, retryAfterMs: want.retryAfterMs, reason: want.reason },
            );
            assert.equal(got.lease !== undefined, want.allowed, "a lease comes with every allowed acquire and only then");
            if (got.lease) handles.push({ lease: got.lease, id, key: cmd.key });
          } else if (handles.length > 0) {
            const h = handles[cmd.handle % handles.length]!;
            if (cmd.kind === "release") {
              await h.lease.release();
              model.release(h.key, h.id, clock.now());
            } else {
              assert.equal(await h.lease.renew(), model.renew(h.key, h.id, clock.now()), "renew succeeds exactly while the lease is held");
            }
          }
          for (const k of ["a", "b", "c"]) assert.equal(await limiter.held(k), model.held(k, clock.now()), `held(${k})`);
        }
        t.answered();
      }),
      { numRuns: t.runs(300) },
    );
  });
});
});
