import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  ConcurrencyLimiter,
  InvalidArgumentError,
  ManualClock,
  MemoryStore,
  type MemoryLimiterOptions,
  PenaltyBox,
  createLimiter,
} from "../../src/index.js";

const BAD_NUMBERS: unknown[] = [NaN, Infinity, -Infinity, -1, 0, "5"];

function throwsNaming(param: string, fn: () => unknown, label: string): void {
  assert.throws(
    fn,
    (e: unknown) => e instanceof InvalidArgumentError && e.param === param && e.code === "invalid_argument" && e.message.startsWith(`${param}:`),
    `${label}: expected an InvalidArgumentError naming ${param}`,
  );
}

describe("bad input", () => {
  test("rate-limit parameters: NaN, Infinity, negative, zero and non-numbers are refused at construction, naming the parameter", () => {
    const base: Record<string, MemoryLimiterOptions> = {
      rate: { algorithm: "gcra", rate: 1 },
      burst: { algorithm: "gcra", rate: 1, burst: 1 },
      periodMs: { algorithm: "gcra", rate: 1, periodMs: 1000 },
      permitLimit: { algorithm: "fixed_window", permitLimit: 1, windowMs: 1000 },
      windowMs: { algorithm: "sliding_window", limit: 1, windowMs: 1000 },
      limit: { algorithm: "sliding_window", limit: 1, windowMs: 1000 },
    };
    for (const [param, ok] of Object.entries(base)) {
      assert.doesNotThrow(() => createLimiter(ok), param);
      for (const bad of BAD_NUMBERS) {
        throwsNaming(param, () => createLimiter({ ...ok, [param]: bad } as MemoryLimiterOptions), `${param} = ${String(bad)}`);
      }
    }
  });

  test("counts must be whole: permitLimit, limit and queueLimit", () => {
    throwsNaming("permitLimit", () => createLimiter({ algorithm: "fixed_window", permitLimit: 2.5, windowMs: 1000 }), "permitLimit 2.5");
    throwsNaming("limit", () => createLimiter({ algorithm: "sliding_window", limit: 2.5, windowMs: 1000 }), "limit 2.5");
    for (const q of [-1, 1.5, NaN, Infinity]) {
      throwsNaming("queueLimit", () => createLimiter({ algorithm: "fixed_window", permitLimit: 2, windowMs: 1000, queueLimit: q }), `queueLimit ${q}`);
    }
  });

  test("parameters too extreme to compute with are refused, not turned into Infinity", () => {
    throwsNaming("rate", () => createLimiter({ algorithm: "gcra", rate: Number.MIN_VALUE }), "rate MIN_VALUE");
    throwsNaming("burst", () => createLimiter({ algorithm: "gcra", rate: 1e-300, burst: 1e300 }), "burst · interval overflows");
  });

  test("unknown algorithm, queue order, near-limit ratio and empty name are refused", () => {
    throwsNaming("algorithm", () => createLimiter({ algorithm: "leaky" } as unknown as MemoryLimiterOptions), "algorithm");
    throwsNaming(
      "queueOrder",
      () => createLimiter({ algorithm: "fixed_window", permitLimit: 1, windowMs: 1, queueLimit: 1, queueOrder: "random" as "oldest_first" }),
      "queueOrder",
    );
    for (const r of [-0.1, 1.1, NaN]) throwsNaming("nearLimitRatio", () => createLimiter({ algorithm: "gcra", rate: 1, nearLimitRatio: r }), `ratio ${r}`);
    throwsNaming("name", () => createLimiter({ algorithm: "gcra", rate: 1, name: "" }), "name");
  });

  test("costs: zero, negative, NaN, Infinity and non-numbers are bad input on check, peek, acquire and composite checks", async () => {
    const l = createLimiter({ algorithm: "gcra", rate: 5, clock: new ManualClock() });
    for (const bad of [0, -1, -0, NaN, Infinity, -Infinity, "2", null]) {
      throwsNaming("cost", () => l.check("k", bad as number), `check cost ${String(bad)}`);
      throwsNaming("cost", () => l.peek("k", bad as number), `peek cost ${String(bad)}`);
      await assert.rejects(l.acquire("k", bad as number), (e: unknown) => e instanceof InvalidArgumentError && e.param === "cost");
    }
    assert.equal(l.peek("k").remaining, 5, "nothing was consumed by bad input");
  });

  test("keys must be strings", () => {
    const l = createLimiter({ algorithm: "gcra", rate: 5, clock: new ManualClock() });
    for (const bad of [undefined, null, 1, {}]) {
      throwsNaming("key", () => l.check(bad as string), `key ${String(bad)}`);
      throwsNaming("key", () => l.peek(bad as string), `peek key ${String(bad)}`);
    }
    const c = new ConcurrencyLimiter({ limit: 1 });
    throwsNaming("key", () => c.tryAcquire(3 as unknown as string), "concurrency key");
    const p = new PenaltyBox();
    throwsNaming("key", () => p.recordFailure({} as string), "penalty key");
  });

  test("concurrency, penalty box and store parameters", () => {
    for (const bad of [0, -1, 1.5, NaN, Infinity]) throwsNaming("limit", () => new ConcurrencyLimiter({ limit: bad }), `limit ${bad}`);
    for (const bad of [0, -1, NaN, Infinity]) throwsNaming("leaseTtlMs", () => new ConcurrencyLimiter({ limit: 1, leaseTtlMs: bad }), `ttl ${bad}`);
    for (const bad of [0, -1, 1.5, NaN]) throwsNaming("maxKeys", () => new MemoryStore({ maxKeys: bad }), `store maxKeys ${bad}`);
    for (const bad of [0, -1, 1.5, NaN]) throwsNaming("maxKeys", () => new PenaltyBox({ maxKeys: bad }), `box maxKeys ${bad}`);
    const penaltyParams = ["throttleAfter", "backoffBaseMs", "backoffMaxMs", "banFailures", "banWindowMs", "banDurationMs", "banMultiplier", "banMaxMs", "retentionMs"];
    for (const param of penaltyParams) {
      for (const bad of [NaN, Infinity, -1, "3"]) throwsNaming(param, () => new PenaltyBox({ [param]: bad }), `${param} = ${String(bad)}`);
    }
  });
});
