/**
 * One conformance suite for every store: it runs every limiter kind of the
 * one limiter family (rate limits with each algorithm, limiter sets,
 * concurrency limits, penalty boxes, the fixed-window queue) over a store
 * with a ManualClock, and compares each answer with the reference models
 * (test/property/models.ts), field by field. The same cases run on the
 * memory store, on Redis and on the message store; a store you write runs
 * them too (see docs/library.md, "Writing your own store").
 *
 * What a store must do to pass:
 *  - implement the Store contract (src/stores/store.ts);
 *  - take time only from the `now` each operation carries (the suite moves
 *    the clock by hand; limiters clamp it so it never goes back);
 *  - keep limits of different names apart (every case uses a fresh name).
 */
import { randomUUID } from "node:crypto";
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  AcquireAbortedError,
  ConcurrencyLimiter,
  type Decision,
  LimiterSet,
  ManualClock,
  PenaltyBox,
  type RateLimitOptions,
  type Store,
  type AdmitAnswer,
  Outcome,
  admitAll,
  createLimiter,
  limitSpec,
  releaseAll,
  seededRng,
} from "../../src/index.js";
import { ConcurrencyModel, type ModelDecision, PenaltyModel, type PenaltyModelParams, type RateModel, modelFor } from "../property/models.js";

/** The store under test. */
export interface ConformanceTarget {
  /** The store a limit of the case runs on (a fresh one per limit, or a shared one). */
  store(): Store;
  /** Throws when the last answers did not come from the store itself (it fell back to its failure mode). */
  answered?(): void;
  /**
   * Redis Cluster: a set over keys in different slots peeks before it
   * charges (docs/redis.md, "Composite check"), so when a later limit
   * rejects, the limits before it report their peek (remaining before the
   * charge, never made) instead of a charge undone.
   */
  crossSlotSets?: boolean;
}

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

async function runScript(target: ConformanceTarget, name: string, options: RateLimitOptions, start: number, steps: readonly Step[]): Promise<void> {
  const clock = new ManualClock(start);
  const limit = createLimiter({ ...options, name, clock, store: target.store() });
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
        target.answered?.();
        const want = model.check(s.check, clock.now(), cost);
        expectMatch(got, want, `step ${i}: check(${s.check}, ${cost}) at t=${clock.now()}`);
        lastRetry = want.retryAfterMs;
      }
    }
  } finally {
    limit.dispose();
  }
}

/**
 * Registers the conformance tests for one store: a describe block named
 * `storeName` with one test per scripted rate case, one seeded random
 * sequence per algorithm, and the cases of the other limiter kinds.
 */
export function conformanceSuite(storeName: string, target: ConformanceTarget): void {
  // Limit names are unique per run, so a shared store (Redis) never sees a previous run's keys.
  const run = randomUUID().slice(0, 8);
  let n = 0;
  const uniqueName = (label: string): string => `conf-${run}-${++n}-${label.replace(/[^a-z0-9]+/gi, "-").slice(0, 40)}`;

  describe(storeName, () => {
    describe("rate limits: scripted cases", () => {
      for (const k of CASES) {
        test(k.name, async () => {
          await runScript(target, uniqueName(k.name), k.options, k.start ?? 0, k.steps);
        });
      }
    });
    describe("rate limits: seeded random sequences", () => {
      for (const plan of RANDOM_PLANS) {
        for (const seed of [1, 2]) {
          test(`${plan.name} (seed ${seed}, ${RANDOM_STEPS} steps)`, async () => {
            await runScript(target, uniqueName(`${plan.name}-${seed}`), plan.options, plan.start ?? 0, randomSteps(plan, seed));
          });
        }
      }
    });
    describe("limiter set", () => {
      for (const seed of [1, 2, 3]) {
        test(`all or nothing over three algorithms, against the models (seed ${seed})`, async () => {
          await runSet(target, uniqueName(`set-${seed}`), seed);
        });
      }
      test("a shadowed limit that would reject does not block the set", async () => {
        const clock = new ManualClock(0);
        const store = target.store();
        const name = uniqueName("set-shadow");
        const a = createLimiter({ algorithm: "fixed_window", permitLimit: 1, windowMs: 1000, name: `${name}-a`, clock, store, shadow: true });
        const b = createLimiter({ algorithm: "fixed_window", permitLimit: 5, windowMs: 1000, name: `${name}-b`, clock, store });
        const set = new LimiterSet([a, b] as never[]);
        for (let i = 0; i < 3; i++) {
          const r = await set.check(["k", "k"]);
          target.answered?.();
          assert.equal(r.allowed, true);
          assert.equal(r.decisions[0]!.shadowed, i > 0, "the shadowed limit reports its would-be rejection");
        }
        assert.equal((await b.peek("k")).remaining, 2, "the enforced limit was charged every time");
      });
    });
    describe("concurrency limits", () => {
      for (const ttl of [undefined, 300]) {
        test(`acquire, release, renew and expiry against the model (${ttl === undefined ? "no TTL" : `TTL ${ttl} ms`})`, async () => {
          await runConcurrency(target, uniqueName(`conc-${ttl ?? "none"}`), ttl);
        });
      }
      test("nearLimitRatio is honoured", async () => {
        const c = new ConcurrencyLimiter({ limit: 10, nearLimitRatio: 0.5, name: uniqueName("conc-near"), clock: new ManualClock(0), store: target.store() });
        const near: boolean[] = [];
        for (let i = 0; i < 6; i++) near.push((await c.tryAcquire("k")).decision.nearLimit);
        target.answered?.();
        assert.deepEqual(near, [false, false, false, false, true, true], "remaining 9..4: near at or below 5");
      });
    });
    describe("admission: admitAll and releaseAll", () => {
      // A connection's admission: a global cap, a per-address cap, a rate.
      const tables = (label: string, o: { global: number; perKey: number; rate: number; shadowPerKey?: boolean }) => {
        const store = target.store();
        const global = store.leaseTable(uniqueName(`${label}-global`), { limit: o.global, ttlMs: 60_000, clockInjected: true });
        const perKey = store.leaseTable(uniqueName(`${label}-ip`), { limit: o.perKey, ttlMs: 60_000, clockInjected: true });
        const rate = store.rateTable(uniqueName(`${label}-rate`), limitSpec({ algorithm: "gcra", rate: o.rate, periodMs: 60_000, burst: o.rate }), { clockInjected: true });
        const now = 1000;
        const ops = {
          leases: [
            { table: global, key: "*", now, shadow: false },
            { table: perKey, key: "10.0.0.1", now, shadow: o.shadowPerKey ?? false },
          ],
          rates: [{ table: rate, key: "10.0.0.1", cost: 1, now, shadow: false }],
        };
        const admit = async () => {
          const a = await admitAll(store, ops);
          target.answered?.();
          assert.ok(a !== undefined, "the store answered");
          return a;
        };
        const held = async () => [await global.held("*", now), await perKey.held("10.0.0.1", now)];
        const left = async () => (await rate.peek("10.0.0.1", 1, now, new Outcome()))!.remaining;
        const release = async (a: AdmitAnswer) =>
          releaseAll(store, [
            { table: global, key: "*", id: a.leases[0]!.id, now },
            { table: perKey, key: "10.0.0.1", id: a.leases[1]!.id, now },
          ]);
        return { admit, held, left, release };
      };

      test("takes every lease and charges every rate when all allow", async () => {
        const t = tables("adm-ok", { global: 10, perKey: 2, rate: 5 });
        const a = await t.admit();
        assert.deepEqual(
          a.leases.map((g) => g.held),
          [1, 1],
        );
        assert.equal(a.rates.length, 1);
        assert.equal(a.rates[0]!.allowed, true);
        assert.equal(a.rates[0]!.remaining, 4);
        assert.deepEqual(await t.held(), [1, 1]);
        assert.equal(await t.left(), 4);
      });

      test("a full cap refuses: no lease taken, no rate charged", async () => {
        const t = tables("adm-cap", { global: 10, perKey: 1, rate: 5 });
        await t.admit();
        const a = await t.admit();
        assert.equal(a.leases.length, 2);
        assert.ok(a.leases[0]!.held >= 0, "the global cap had room");
        assert.equal(a.leases[1]!.held, -1, "the per-address cap was full");
        assert.deepEqual(a.rates, [], "the rates after a refusal are not decided");
        assert.deepEqual(await t.held(), [1, 1], "the global lease was not taken");
        assert.equal(await t.left(), 4, "the rate was not charged");
      });

      test("a rate refusal takes no lease", async () => {
        const t = tables("adm-rate", { global: 10, perKey: 5, rate: 1 });
        assert.deepEqual(await t.release(await t.admit()), [true, true]);
        const a = await t.admit();
        assert.equal(a.rates.length, 1);
        assert.equal(a.rates[0]!.allowed, false);
        assert.ok(a.rates[0]!.retryAfterMs > 0);
        assert.deepEqual(await t.held(), [0, 0], "neither lease was kept");
      });

      test("a shadow cap's refusal neither stops the others nor takes a lease", async () => {
        const t = tables("adm-shadow", { global: 10, perKey: 1, rate: 5, shadowPerKey: true });
        await t.admit();
        const a = await t.admit();
        assert.deepEqual(
          a.leases.map((g) => g.held),
          [2, -1],
        );
        assert.equal(a.rates.length, 1);
        assert.equal(a.rates[0]!.allowed, true);
        assert.deepEqual(await t.held(), [2, 1]);
        assert.equal(await t.left(), 3);
      });

      test("releaseAll ends every lease, once", async () => {
        const t = tables("adm-release", { global: 10, perKey: 2, rate: 5 });
        const a = await t.admit();
        await t.admit();
        assert.deepEqual(await t.release(a), [true, true]);
        assert.deepEqual(await t.held(), [1, 1], "the other admission's leases stay");
        assert.deepEqual(await t.release(a), [false, false], "a second release finds nothing");
        target.answered?.();
      });
    });
    describe("penalty box", () => {
      for (const seed of [1, 2]) {
        test(`streaks, back-off, bans and success against the model (seed ${seed})`, async () => {
          await runPenalty(target, uniqueName(`penalty-${seed}`), seed);
        });
      }
      test("a ban placed directly is listed and checked; forgetting lifts it", async () => {
        const clock = new ManualClock(50_000);
        const box = new PenaltyBox({ name: uniqueName("penalty-ban"), clock, store: target.store(), banDurationMs: 10_000 });
        const until = await box.ban("k", 4000);
        target.answered?.();
        assert.equal(until, 54_000);
        assert.deepEqual(
          (await box.banned()).map((b) => [b.key, b.bannedUntil]),
          [["k", 54_000]],
        );
        const d = await box.check("k");
        assert.deepEqual([d.allowed, d.reason, d.retryAfterMs], [false, "banned", 4000]);
        assert.equal(await box.forget("k"), true);
        assert.equal((await box.check("k")).allowed, true);
        assert.deepEqual(await box.banned(), []);
      });
    });
    describe("fixed-window queue", () => {
      for (const order of ["oldest_first", "newest_first"] as const) {
        test(`waiters are admitted in ${order} order when the window opens; a full queue answers queue_full`, async () => {
          await runQueue(target, uniqueName(`queue-${order}`), order);
        });
      }
      test("an aborted waiter leaves the queue and the next one moves up", async () => {
        const clock = new ManualClock(0);
        const l = createLimiter({ algorithm: "fixed_window", permitLimit: 1, windowMs: 1000, queueLimit: 2, name: uniqueName("queue-abort"), clock, store: target.store() });
        try {
          assert.equal((await l.acquire("k")).allowed, true);
          const abort = new AbortController();
          const first = l.acquire("k", 1, { signal: abort.signal });
          const second = l.acquire("k");
          await settled(l);
          abort.abort();
          await assert.rejects(first, AcquireAbortedError);
          clock.advance(1000);
          await settled(l);
          assert.equal((await second).allowed, true);
        } finally {
          l.dispose();
        }
      });
    });
  });
}

/** Waits, bounded, until a limit's queue has no store call in flight and the continuations have run. */
async function settled(l: { queueIdle(): boolean }): Promise<void> {
  const deadline = performance.now() + 5000;
  for (let quiet = 0; quiet < 3; ) {
    await new Promise<void>((r) => setImmediate(r));
    quiet = l.queueIdle() ? quiet + 1 : 0;
    if (performance.now() > deadline) throw new Error("the queue's store calls did not finish within 5 s");
  }
}

const SET_LIMITS: RateLimitOptions[] = [
  { algorithm: "gcra", rate: 5, burst: 3 },
  { algorithm: "sliding_window", limit: 4, windowMs: 700 },
  { algorithm: "fixed_window", permitLimit: 6, windowMs: 1000 },
];

/** A model's copy: a set's trial runs on copies, kept only when every limit allows. */
function cloneModel<T>(m: T): T {
  if (m === null || typeof m !== "object") return m;
  if (m instanceof Map) return new Map([...m].map(([k, v]) => [k, cloneModel(v)])) as T;
  if (Array.isArray(m)) return m.map(cloneModel) as T;
  const c = Object.create(Object.getPrototypeOf(m) as object) as Record<string, unknown>;
  for (const [k, v] of Object.entries(m)) c[k] = cloneModel(v);
  return c as T;
}

async function runSet(target: ConformanceTarget, name: string, seed: number): Promise<void> {
  const rng = seededRng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng.next() * xs.length)]!;
  const clock = new ManualClock(0);
  const store = target.store();
  const limiters = SET_LIMITS.map((o, i) => createLimiter({ ...o, name: `${name}-${i}`, clock, store }));
  const set = new LimiterSet(limiters as never[]);
  let models = SET_LIMITS.map((o) => modelFor(o));
  for (let step = 0; step < 120; step++) {
    if (rng.next() < 0.25) {
      clock.advance(Math.floor(rng.next() * 800));
      continue;
    }
    const keys = [pick(["ip1", "ip2"]), pick(["alice", "bob"]), "global"];
    const cost = 1 + Math.floor(rng.next() * 4);
    const got = await set.check(keys, cost);
    target.answered?.();
    const trial = models.map(cloneModel);
    const want: ModelDecision[] = [];
    let rejectedBy: number | undefined;
    for (let i = 0; i < trial.length; i++) {
      const d = trial[i]!.check(keys[i]!, clock.now(), cost);
      want.push(d);
      if (!d.allowed) {
        rejectedBy = i;
        break;
      }
    }
    if (rejectedBy === undefined) models = trial;
    const where = `step ${step}: set.check([${keys.join(",")}], ${cost}) at t=${clock.now()}`;
    assert.equal(got.allowed, rejectedBy === undefined, where);
    assert.equal(got.rejectedBy, rejectedBy === undefined ? undefined : `${name}-${rejectedBy}`, where);
    // A peek reports the room before the charge: `cost` more than a charge undone would.
    const peeked = (i: number): boolean => target.crossSlotSets === true && rejectedBy !== undefined && i < rejectedBy;
    assert.deepEqual(
      got.decisions.map((d) => [d.allowed, d.remaining, d.retryAfterMs, d.reason]),
      want.map((d, i) => [d.allowed, peeked(i) ? d.remaining + cost : d.remaining, d.retryAfterMs, d.reason]),
      where,
    );
  }
  limiters.forEach((l) => l.dispose());
}

async function runConcurrency(target: ConformanceTarget, name: string, ttl: number | undefined): Promise<void> {
  const rng = seededRng(ttl ?? 7);
  const clock = new ManualClock(1000);
  const limit = 3;
  const limiter = new ConcurrencyLimiter({ limit, name, clock, store: target.store(), ...(ttl === undefined ? {} : { leaseTtlMs: ttl }) });
  const model = new ConcurrencyModel(limit, ttl ?? Infinity);
  const held: { lease: { release(): unknown; renew(): unknown }; id: number; key: string }[] = [];
  let nextId = 1;
  for (let step = 0; step < 150; step++) {
    const r = rng.next();
    const key = ["a", "b"][Math.floor(rng.next() * 2)]!;
    const where = `step ${step} at t=${clock.now()}`;
    if (r < 0.45) {
      const id = nextId++;
      const want = model.acquire(key, id, clock.now());
      const got = await limiter.tryAcquire(key);
      target.answered?.();
      assert.deepEqual(
        [got.decision.allowed, got.decision.remaining, got.decision.retryAfterMs, got.decision.reason],
        [want.allowed, want.remaining, want.retryAfterMs, want.reason],
        `${where}: acquire(${key})`,
      );
      assert.equal(got.lease !== undefined, want.allowed, `${where}: a lease comes with every allowed acquire and only then`);
      if (got.lease) held.push({ lease: got.lease, id, key });
    } else if (r < 0.7 && held.length > 0) {
      const h = held[Math.floor(rng.next() * held.length)]!;
      await h.lease.release();
      model.release(h.key, h.id, clock.now());
    } else if (r < 0.8 && held.length > 0) {
      const h = held[Math.floor(rng.next() * held.length)]!;
      assert.equal(await h.lease.renew(), model.renew(h.key, h.id, clock.now()), `${where}: renew succeeds exactly while the lease is held`);
    } else if (r < 0.95) {
      clock.advance(Math.floor(rng.next() * 200));
    } else {
      clock.set(clock.now() - Math.floor(rng.next() * 100) - 1);
    }
    for (const k of ["a", "b"]) assert.equal(await limiter.held(k), model.held(k, clock.now()), `${where}: held(${k})`);
  }
}

const PENALTY_PARAMS: PenaltyModelParams = {
  throttleAfter: 2,
  backoffBaseMs: 20,
  backoffMaxMs: 300,
  banFailures: 4,
  banWindowMs: 1500,
  banDurationMs: 1000,
  banMultiplier: 2,
  banMaxMs: 5000,
  retentionMs: 3000,
};

async function runPenalty(target: ConformanceTarget, name: string, seed: number): Promise<void> {
  const rng = seededRng(seed);
  const clock = new ManualClock(10_000);
  const box = new PenaltyBox({ ...PENALTY_PARAMS, name, clock, store: target.store() });
  const model = new PenaltyModel(PENALTY_PARAMS);
  for (let step = 0; step < 150; step++) {
    const r = rng.next();
    const key = ["a", "b", "c"][Math.floor(rng.next() * 3)]!;
    const where = `step ${step} at t=${clock.now()}`;
    if (r < 0.45) {
      const got = await box.recordFailure(key);
      target.answered?.();
      const want = model.failure(key, clock.now());
      assert.deepEqual(
        { streak: got.streak, throttledUntil: got.throttledUntil, bannedUntil: got.bannedUntil, bans: got.bans, banned: got.banned },
        want,
        `${where}: recordFailure(${key})`,
      );
    } else if (r < 0.5) {
      await box.recordSuccess(key);
      model.success(key);
    } else if (r < 0.7) {
      const got = await box.check(key);
      target.answered?.();
      assert.deepEqual({ allowed: got.allowed, reason: got.reason, retryAfterMs: got.retryAfterMs }, model.check(key, clock.now()), `${where}: check(${key})`);
    } else if (r < 0.95) {
      clock.advance(Math.floor(rng.next() * (rng.next() < 0.8 ? 400 : 4000)));
    } else {
      clock.set(clock.now() - Math.floor(rng.next() * 300) - 1);
    }
    for (const k of ["a", "b", "c"]) assert.deepEqual({ ...(await box.status(k)) }, model.view(k, clock.now()), `${where}: status(${k})`);
  }
}

async function runQueue(target: ConformanceTarget, name: string, order: "oldest_first" | "newest_first"): Promise<void> {
  const clock = new ManualClock(0);
  const l = createLimiter({ algorithm: "fixed_window", permitLimit: 2, windowMs: 1000, queueLimit: 3, queueOrder: order, name, clock, store: target.store() });
  const settledAs: string[] = [];
  const waiter = (label: string, cost: number): Promise<void> =>
    l.acquire("k", cost).then(
      (d) => {
        settledAs.push(`${label}:${d.allowed ? "ok" : d.reason}`);
      },
      (e: unknown) => {
        settledAs.push(`${label}:${e instanceof AcquireAbortedError ? "aborted" : "error"}`);
      },
    );
  try {
    const all: Promise<void>[] = [];
    all.push(waiter("a1", 1));
    await settled(l);
    all.push(waiter("a2", 1));
    await settled(l);
    assert.deepEqual(settledAs, ["a1:ok", "a2:ok"], "the window's two permits pass at once");
    all.push(waiter("w1", 1));
    await settled(l);
    all.push(waiter("w2", 2));
    await settled(l);
    // The queue holds 3 permits: one more does not fit. Oldest first it is refused; newest first it drops w1.
    all.push(waiter("w3", 1));
    await settled(l);
    if (order === "oldest_first") {
      assert.deepEqual(settledAs.slice(2), ["w3:queue_full"]);
      const d = await l.check("k");
      assert.deepEqual([d.allowed, d.reason], [false, "rate_limited"], "a newcomer does not pass the waiters");
      clock.advance(1000);
      await settled(l);
      assert.deepEqual(settledAs.slice(3), ["w1:ok"], "w1 fits; w2 (cost 2) does not fit the permit left and blocks the rest");
      clock.advance(1000);
      await settled(l);
      assert.deepEqual(settledAs.slice(4), ["w2:ok"]);
    } else {
      assert.deepEqual(settledAs.slice(2), ["w1:queue_full"], "the oldest waiter gives way to the newcomer");
      clock.advance(1000);
      await settled(l);
      assert.deepEqual(settledAs.slice(3), ["w3:ok"], "the newest waiter first; w2 (cost 2) does not fit the permit left");
      clock.advance(1000);
      await settled(l);
      assert.deepEqual(settledAs.slice(4), ["w2:ok"]);
    }
    await Promise.all(all);
    target.answered?.();
  } finally {
    l.dispose();
  }
}
