/**
 * The memory store's hot path: a limit on it answers synchronously (values,
 * never promises), `allow()` allocates nothing and `check()` allocates only
 * its Decision. Allocation is counted as young-generation collections in a
 * fresh Node with a 1 MiB semi-space on the built library (dist/, which the
 * test runner builds first): any per-call object (a closure, an options
 * record, a boxed number) fills it within a few thousand calls and shows as
 * tens of collections over the run. For check() every number of the
 * Decision is kept a small integer (a stopped clock), so the count compares
 * the Decision objects alone with building the same Decisions directly.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { describe, test } from "node:test";
import { pathToFileURL } from "node:url";
import { createLimiter } from "../../src/limiter/create-limiter.js";
import { Decision } from "../../src/limiter/decision.js";
import { LimiterSet } from "../../src/limiter/limiter-set.js";
import type { RateLimitOptions } from "../../src/algorithms/limit-spec.js";

const root = new URL("../..", import.meta.url).pathname;
const dist = (p: string) => JSON.stringify(pathToFileURL(join(root, "dist", p)).href);

const ALGORITHMS: RateLimitOptions[] = [
  { algorithm: "gcra", rate: 10, periodMs: 1000, burst: 5 },
  { algorithm: "token_bucket", rate: 10, periodMs: 1000, burst: 5 },
  { algorithm: "fixed_window", permitLimit: 5, windowMs: 1000 },
  { algorithm: "fixed_window", permitLimit: 5, windowMs: 1000, queueLimit: 2 },
  { algorithm: "sliding_window", limit: 5, windowMs: 1000 },
];

function isThenable(v: unknown): boolean {
  return typeof (v as { then?: unknown } | null)?.then === "function";
}

describe("the memory store's sync surface", () => {
  for (const o of ALGORITHMS) {
    const label = `${o.algorithm}${"queueLimit" in o ? " with a queue" : ""}`;
    test(`${label}: check, peek and allow answer values at once, allowed and rejected alike`, () => {
      const l = createLimiter(o);
      for (let i = 0; i < 7; i++) {
        const d = l.check("k");
        assert.ok(d instanceof Decision && !isThenable(d), `check ${i} answered a Decision`);
        const p = l.peek("k");
        assert.ok(p instanceof Decision && !isThenable(p), `peek ${i} answered a Decision`);
        assert.equal(typeof l.allow("k"), "boolean");
      }
      assert.equal(l.check("k").allowed, false, "the key ran out: the rejecting path is covered too");
      assert.throws(() => l.check(42 as unknown as string), "bad input throws on the sync surface");
      l.dispose();
    });
  }

  test("a limiter set over the memory store answers its composite decision at once", () => {
    const set = new LimiterSet([createLimiter({ algorithm: "gcra", rate: 1, burst: 1 }), createLimiter({ algorithm: "sliding_window", limit: 2, windowMs: 1000 })]);
    const first = set.check(["a", "b"]);
    assert.ok(!isThenable(first) && first.allowed);
    const second = set.check(["a", "b"]);
    assert.ok(!isThenable(second) && !second.allowed);
  });
});

/**
 * Runs `calls` checks or allows on one hot key after warming the code up,
 * and answers the young-generation collections during them; `reference`
 * builds the same Decision `calls` times with `new Decision` instead.
 */
function scavengesDuring(mode: "allow" | "check" | "reference", calls: number): Promise<number> {
  const code = `
    import { PerformanceObserver, performance, constants } from "node:perf_hooks";
    const { createLimiter } = await import(${dist("limiter/create-limiter.js")});
    const { Decision } = await import(${dist("limiter/decision.js")});
    // allow(): the default (turn-cached) clock. check(): a clock that stands
    // still, so every number of the Decision is a small integer and none is
    // boxed: what is left to count is the Decision object itself.
    const stopped = { now: () => 0, wallNow: () => Date.now(), setTimer: () => ({ cancel() {} }) };
    const l = ${JSON.stringify(mode)} === "allow"
      ? createLimiter({ algorithm: "gcra", rate: 1, periodMs: 3_600_000, burst: 1e12, name: "hot" })
      : createLimiter({ algorithm: "gcra", rate: 1, periodMs: 1, burst: 1e9, name: "hot", clock: stopped });
    let ok = 0;
    let sink;
    const sample = l.check("hot");
    const run = (n) => {
      if (${JSON.stringify(mode)} === "allow") for (let i = 0; i < n; i++) { if (l.allow("hot")) ok++; }
      else if (${JSON.stringify(mode)} === "check") for (let i = 0; i < n; i++) { sink = l.check("hot"); if (sink.allowed) ok++; }
      else for (let i = 0; i < n; i++) {
        sink = new Decision(sample.allowed, sample.remaining, sample.limit, sample.resetMs, sample.retryAfterMs, sample.reason, sample.nearLimit, sample.shadowed);
        if (sink.allowed) ok++;
      }
    };
    run(200_000);
    const minor = [];
    const obs = new PerformanceObserver((list) => { for (const e of list.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) minor.push(e.startTime); });
    obs.observe({ entryTypes: ["gc"] });
    await new Promise((r) => setImmediate(r));
    const t0 = performance.now();
    run(${calls});
    const t1 = performance.now();
    await new Promise((r) => setTimeout(r, 50));
    obs.disconnect();
    if (ok < ${calls}) throw new Error("a check was rejected");
    console.log(JSON.stringify({ scavenges: minor.filter((t) => t >= t0 && t <= t1).length }));
  `;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--max-semi-space-size=1", "--input-type=module", "-e", code],
      { cwd: root, timeout: 120_000 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`${mode} run failed: ${stderr.slice(0, 2000)}`));
        resolve((JSON.parse(stdout.trim().split("\n").pop()!) as { scavenges: number }).scavenges);
      },
    );
  });
}

describe("the memory store's hot path allocates nothing but the Decision", () => {
  const CALLS = 1_000_000;

  test("allow() allocates nothing: at most a stray collection over a million calls", async () => {
    // One 16-byte object per call would fill the 1 MiB semi-space at least
    // 15 times over the run, in every run. A stray collection can come from
    // outside the loop (the optimizing compiler installing code on a busy
    // machine): up to two are tolerated, and since such noise only ever adds,
    // the least of up to three runs is what is judged.
    const counts: number[] = [];
    while (counts.length < 3 && !counts.some((c) => c <= 2)) counts.push(await scavengesDuring("allow", CALLS));
    assert.ok(Math.min(...counts) <= 2, `allow() collected ${counts.join(", ")} times over ${CALLS} calls`);
  });

  test("check() allocates its Decision and nothing else: no more collections than building the Decisions alone", async () => {
    // Stray collections (see above) only add: up to three pairs of runs, the first pair within bounds passes.
    const pairs: string[] = [];
    let within = false;
    for (let i = 0; i < 3 && !within; i++) {
      const reference = await scavengesDuring("reference", CALLS);
      const check = await scavengesDuring("check", CALLS);
      // A million Decisions fill a 1 MiB semi-space tens of times: the count can tell.
      assert.ok(reference >= 20, `building the Decisions alone collected ${reference} times`);
      // One extra 16-byte object per call (a boxed number, a closure) adds a quarter or more.
      within = check <= Math.ceil(reference * 1.1) + 1;
      pairs.push(`check() ${check} against the Decisions alone ${reference}`);
    }
    assert.ok(within, `collections: ${pairs.join("; ")}`);
  });
});
