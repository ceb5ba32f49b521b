/**
 * One conformance suite for every store: it drives limits made by the
 * store's factory with a ManualClock and compares each decision with the
 * reference models (test/property/models.ts), field by field.
 *
 * What a store must do to pass:
 *  - read time only from `opts.clock` (the suite moves it by hand);
 *  - treat a clock reading earlier than one the limit has already seen as
 *    "no time has passed" (clamp per limit instance, before the transition);
 *  - keep limits of different `name`s apart (every case uses a fresh name).
 *
 * Only the factory and `check` are used, so the same table runs unchanged on
 * the memory store and on Redis.
 */
import { randomUUID } from "node:crypto";
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type Decision, ManualClock, type RateLimitOptions, seededRng } from "../../src/index.js";
import { type ModelDecision, type RateModel, modelFor } from "../property/models.js";

export type ConformanceFactory = (
  opts: RateLimitOptions & { name: string; clock: ManualClock },
) => Promise<{ check(key: string, cost?: number): Promise<Decision>; dispose(): Promise<void> | void }>;

/** One step of a scripted case. */
type Step =
  /** Check `key` (default "k") with `cost` (default 1). */
  | { check: string; cost?: number }
  /** Move the clock to an absolute time (may go backwards). */
  | { at: number }
  /** Move the clock forward. */
  | { advance: number }
  /** Move the clock forward by the last decision's retryAfterMs. */
  | { waitRetry: true };

interface Case {
  name: string;
  options: RateLimitOptions;
  /** Clock reading at the start (default 0). */
  start?: number;
  steps: Step[];
}

const c = (key = "k", cost?: number): Step => (cost === undefined ? { check: key } : { check: key, cost });
const times = (n: number, step: Step): Step[] => Array.from({ length: n }, () => step);

const GCRA_2: RateLimitOptions = { algorithm: "gcra", rate: 2, burst: 2 };
const GCRA_5: RateLimitOptions = { algorithm: "gcra", rate: 5, burst: 5 };
const FW_3: RateLimitOptions = { algorithm: "fixed_window", permitLimit: 3, windowMs: 1000 };
const SW_4: RateLimitOptions = { algorithm: "sliding_window", limit: 4, windowMs: 1000 };

/** The scripted table: boundaries, costs, idle, burst, clock regressions. */
export const CASES: readonly Case[] = [
  // GCRA / token bucket
  {
    name: "gcra 2/s burst 2: t=0,1,2 then 1002,1003,1004",
    options: GCRA_2,
    steps: [c(), { at: 1 }, c(), { at: 2 }, c(), { at: 1002 }, c(), { at: 1003 }, c(), { at: 1004 }, c()],
  },
  {
    name: "gcra 5/s drained, idle 2 s, allows exactly 5",
    options: GCRA_5,
    steps: [...times(6, c()), { advance: 2000 }, ...times(6, c())],
  },
  {
    name: "gcra weight 6 on burst 5 is insufficient capacity; weight 5 on a fresh key passes",
    options: GCRA_5,
    steps: [c("a", 6), c("b", 5), c("b", 1), c("a", 6), { advance: 10_000 }, c("a", 6), c("a", 5)],
  },
  {
    name: "gcra waiting exactly retryAfterMs is allowed",
    options: { algorithm: "gcra", rate: 4, burst: 2 },
    steps: [c(), c(), c(), { waitRetry: true }, c(), c(), { waitRetry: true }, c(), c("k", 2), { waitRetry: true }, c("k", 2)],
  },
  {
    name: "gcra weighted costs drain and refill by weight",
    options: { algorithm: "gcra", rate: 10, burst: 10 },
    steps: [c("k", 3), c("k", 3), c("k", 3), c("k", 3), c("k", 1), { advance: 300 }, c("k", 3), c("k", 4), { advance: 100 }, c("k", 1)],
  },
  {
    name: "gcra rate per window (6 per minute, burst 2)",
    options: { algorithm: "token_bucket", rate: 6, periodMs: 60_000, burst: 2 },
    steps: [c(), c(), c(), { advance: 9_999 }, c(), { advance: 1 }, c(), c()],
  },
  {
    name: "gcra clock going backwards: no refill, no crash",
    options: GCRA_2,
    start: 10_000,
    steps: [c(), c(), c(), { at: 5_000 }, c(), { at: 0 }, c(), { at: 10_499 }, c(), { at: 10_500 }, c()],
  },
  {
    name: "gcra 3/s (interval 333.33 ms, not exact in binary) allows exactly 3 on a fresh key, at any clock reading",
    options: { algorithm: "gcra", rate: 3, burst: 3 },
    start: 1715,
    steps: [...times(4, c()), { advance: 1000 }, ...times(4, c()), { at: 1_000_001_715 }, ...times(4, c()), c("b", 3), c("b")],
  },
  {
    name: "gcra 100,000/s at epoch-millisecond clock readings allows exactly burst",
    options: { algorithm: "gcra", rate: 100_000, burst: 300 },
    start: 1_700_000_000_000,
    steps: [...times(301, c()), { advance: 1 }, ...times(101, c()), { advance: 5000 }, ...times(301, c()), c("b", 300), c("b", 1)],
  },
  {
    name: "gcra keys are independent",
    options: GCRA_2,
    steps: [c("a"), c("a"), c("a"), c("b"), c("b"), c("b"), { advance: 500 }, c("a"), c("b")],
  },
  // Fixed window
  {
    name: "fixed window: exhaust, then exactly at the window boundary",
    options: FW_3,
    steps: [...times(4, c()), { at: 999 }, c(), { at: 1000 }, ...times(4, c())],
  },
  {
    name: "fixed window: windows are aligned to the clock",
    options: FW_3,
    start: 1500,
    steps: [...times(4, c()), { at: 1999 }, c(), { at: 2000 }, c()],
  },
  {
    name: "fixed window: permitCount = permitLimit passes, > permitLimit is insufficient capacity",
    options: FW_3,
    steps: [c("a", 4), c("a", 3), c("a", 1), c("b", 2), c("b", 2), { advance: 1000 }, c("b", 2), c("a", 4)],
  },
  {
    name: "fixed window: waiting exactly retryAfterMs is allowed",
    options: { algorithm: "fixed_window", permitLimit: 2, windowMs: 750 },
    start: 100,
    steps: [c(), c(), c(), { waitRetry: true }, c(), c(), c(), { waitRetry: true }, c()],
  },
  {
    name: "fixed window: clock going backwards stays in the window seen",
    options: FW_3,
    start: 2100,
    steps: [...times(3, c()), { at: 1900 }, c(), { at: 0 }, c(), { at: 2999 }, c(), { at: 3000 }, c()],
  },
  {
    name: "fixed window: long idle reads as fresh",
    options: FW_3,
    steps: [...times(3, c()), { advance: 1_000_000 }, ...times(4, c())],
  },
  // Sliding window
  {
    name: "sliding window: previous window weighs in and decays",
    options: SW_4,
    steps: [{ at: 100 }, ...times(5, c()), { at: 1000 }, c(), { at: 1249 }, c(), { at: 1250 }, c(), c(), { at: 1500 }, c(), c()],
  },
  {
    name: "sliding window: cost = limit passes on a fresh key, > limit is insufficient capacity",
    options: SW_4,
    steps: [c("a", 5), c("a", 4), c("a", 1), { advance: 1000 }, c("a", 4), { advance: 1000 }, c("a", 4), c("a", 5)],
  },
  {
    name: "sliding window: waiting exactly retryAfterMs is allowed",
    options: { algorithm: "sliding_window", limit: 3, windowMs: 600 },
    start: 50,
    steps: [c(), c(), c(), c(), { waitRetry: true }, c(), c(), { waitRetry: true }, c(), c("k", 2), { waitRetry: true }, c("k", 2)],
  },
  {
    name: "sliding window: idle two windows reads as fresh",
    options: SW_4,
    steps: [...times(4, c()), { advance: 2000 }, ...times(5, c())],
  },
  {
    name: "sliding window: clock going backwards",
    options: SW_4,
    start: 1500,
    steps: [...times(4, c()), { at: 800 }, c(), { at: 1500 }, c(), { at: 2000 }, c()],
  },
];

interface RandomPlan {
  name: string;
  options: RateLimitOptions;
  costs: number[];
  smallStep: number;
  bigStep: number;
  /** Clock reading at the start (default 0). */
  start?: number;
}

const RANDOM_PLANS: readonly RandomPlan[] = [
  { name: "gcra", options: { algorithm: "gcra", rate: 4, burst: 3 }, costs: [1, 1, 1, 2, 3, 4], smallStep: 120, bigStep: 3000 },
  {
    name: "token_bucket per minute",
    options: { algorithm: "token_bucket", rate: 12, periodMs: 60_000, burst: 5 },
    costs: [1, 1, 2, 5, 6],
    smallStep: 2500,
    bigStep: 90_000,
  },
  {
    name: "gcra 50,000/s from an epoch-millisecond clock",
    options: { algorithm: "gcra", rate: 50_000, burst: 40 },
    costs: [1, 1, 3, 10, 40, 41],
    smallStep: 2,
    bigStep: 5,
    start: 1_700_000_000_000,
  },
  { name: "fixed_window", options: { algorithm: "fixed_window", permitLimit: 4, windowMs: 500 }, costs: [1, 1, 1, 2, 4, 5], smallStep: 90, bigStep: 1600 },
  { name: "sliding_window", options: { algorithm: "sliding_window", limit: 5, windowMs: 400 }, costs: [1, 1, 1, 2, 5, 6], smallStep: 70, bigStep: 1300 },
];

const RANDOM_STEPS = 400;
const RANDOM_KEYS = ["a", "b", "c"];

/** A reproducible script: checks on a few keys, with zero, small, large, backwards and retry-sized clock moves. */
function randomSteps(plan: RandomPlan, seed: number): Step[] {
  const rng = seededRng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng.next() * xs.length)]!;
  const steps: Step[] = [];
  let t = plan.start ?? 0;
  for (let i = 0; i < RANDOM_STEPS; i++) {
    const r = rng.next();
    if (r < 0.6) steps.push({ check: pick(RANDOM_KEYS), cost: pick(plan.costs) });
    else if (r < 0.75) {
      const d = Math.floor(rng.next() * plan.smallStep);
      t += d;
      steps.push({ advance: d });
    } else if (r < 0.8) {
      const d = Math.floor(rng.next() * plan.bigStep);
      t += d;
      steps.push({ advance: d });
    } else if (r < 0.85) {
      steps.push({ at: Math.max(0, t - Math.floor(rng.next() * plan.smallStep * 3) - 1) });
    } else if (r < 0.9) {
      steps.push({ at: t });
    } else steps.push({ waitRetry: true });
  }
  return steps;
}

function expectMatch(got: Decision, want: ModelDecision, where: string): void {
  const actual = {
    allowed: got.allowed,
    remaining: got.remaining,
    limit: got.limit,
    retryAfterMs: got.retryAfterMs,
    reason: got.reason,
    nearLimit: got.nearLimit,
    shadowed: got.shadowed,
    // resetMs may be fractional: equal up to rounding (stores may order float operations differently).
    resetMs: want.resetMs === undefined ? undefined : Math.abs(got.resetMs - want.resetMs) <= 1e-6 ? want.resetMs : got.resetMs,
  };
  const expected = {
    allowed: want.allowed,
    remaining: want.remaining,
    limit: want.limit,
    retryAfterMs: want.retryAfterMs,
    reason: want.reason,
    nearLimit: want.remaining <= want.limit * 0.2,
    shadowed: false,
    resetMs: want.resetMs,
  };
  assert.deepEqual(actual, expected, where);
  assert.ok(got.resetMs >= 0, `${where}: resetMs must not be negative, got ${got.resetMs}`);
}

async function runScript(factory: ConformanceFactory, name: string, options: RateLimitOptions, start: number, steps: readonly Step[]): Promise<void> {
  const clock = new ManualClock(start);
  const limit = await factory({ ...options, name, clock });
  const model: RateModel = modelFor(options);
  let lastRetry = 0;
  try {
    for (let i = 0; i < steps.length; i++) {
      const s = steps[i]!;
      if ("at" in s) clock.set(s.at);
      else if ("advance" in s) clock.advance(s.advance);
      else if ("waitRetry" in s) clock.advance(lastRetry);
      else {
        const cost = s.cost ?? 1;
        const got = await limit.check(s.check, cost);
        const want = model.check(s.check, clock.now(), cost);
        expectMatch(got, want, `step ${i}: check(${s.check}, ${cost}) at t=${clock.now()}`);
        lastRetry = want.retryAfterMs;
      }
    }
  } finally {
    await limit.dispose();
  }
}

/**
 * Registers the conformance tests for one store: a describe block named
 * `storeName` with one test per scripted case and one seeded random
 * sequence per algorithm.
 */
export function conformanceSuite(
  storeName: string,
  factory: (
    opts: RateLimitOptions & { name: string; clock: ManualClock },
  ) => Promise<{ check(key: string, cost?: number): Promise<Decision>; dispose(): Promise<void> | void }>,
): void {
  // Limit names are unique per run, so a shared store (Redis) never sees a previous run's keys.
  const run = randomUUID().slice(0, 8);
  let n = 0;
  const uniqueName = (label: string): string => `conf-${run}-${++n}-${label.replace(/[^a-z0-9]+/gi, "-").slice(0, 40)}`;

  describe(storeName, () => {
    describe("scripted cases", () => {
      for (const k of CASES) {
        test(k.name, async () => {
          await runScript(factory, uniqueName(k.name), k.options, k.start ?? 0, k.steps);
        });
      }
    });
    describe("seeded random sequences", () => {
      for (const plan of RANDOM_PLANS) {
        for (const seed of [1, 2]) {
          test(`${plan.name} (seed ${seed}, ${RANDOM_STEPS} steps)`, async () => {
            await runScript(factory, uniqueName(`${plan.name}-${seed}`), plan.options, plan.start ?? 0, randomSteps(plan, seed));
          });
        }
      }
    });
  });
}
