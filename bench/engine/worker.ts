/**
 * One measurement in a fresh process (so one implementation's JIT state
 * cannot help or hurt another's): `worker.ts <impl> <scenario>` prints one
 * JSON line. impl: portcullis | portcullis-precise | rlf | naive | naive-precise.
 * scenario: hot | keys | memory. "-precise" variants read the system clock on
 * every decision; the others read it once per event-loop turn (the limiter's
 * default clock), and the naive bucket is given the same clock so the ratio
 * compares the work of the limiters, not the cost of reading the time.
 */
import { RateLimiterMemory } from "rate-limiter-flexible";
import { type Clock, TurnCachedClock, createLimiter, systemClock } from "../../src/index.js";

const [impl = "portcullis", scenario = "hot"] = process.argv.slice(2);
const KEYS = 1_000_000;
const HOT_OPS = 20_000_000;
const KEY_OPS = 4_000_000;
// A limit that never rejects (we measure the decision path, not rejections)
// and never lets a key go idle during the run (an idle GCRA key reads as
// fresh and the store may reclaim it, which would flatter the store): a huge
// burst refilled at one unit per hour.
const BIG = 1e12;
const PERIOD_MS = 3_600_000;

interface Checker {
  check(key: string): boolean | Promise<unknown>;
  async: boolean;
}

function naive(clock: Clock): Checker {
  // The JS ceiling: an unbounded Map of plain objects, no expiry, no eviction.
  const map = new Map<string, { tokens: number; last: number }>();
  const perMs = 1 / PERIOD_MS;
  return {
    async: false,
    check(key) {
      const now = clock.now();
      let b = map.get(key);
      if (b === undefined) {
        b = { tokens: BIG, last: now };
        map.set(key, b);
      }
      b.tokens = Math.min(BIG, b.tokens + (now - b.last) * perMs);
      b.last = now;
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return true;
      }
      return false;
    },
  };
}

function portcullis(clock?: Clock): Checker {
  const l = createLimiter({ algorithm: "gcra", rate: 1, periodMs: PERIOD_MS, burst: BIG, name: "bench", clock });
  return { async: false, check: (key) => l.check(key).allowed };
}

function portcullisAllow(): Checker {
  const l = createLimiter({ algorithm: "gcra", rate: 1, periodMs: PERIOD_MS, burst: BIG, name: "bench" });
  return { async: false, check: (key) => l.allow(key) };
}

function rlf(): Checker {
  const l = new RateLimiterMemory({ points: BIG, duration: PERIOD_MS / 1000 });
  return { async: true, check: (key) => l.consume(key) };
}

const impls: Record<string, () => Checker> = {
  portcullis: () => portcullis(),
  "portcullis-precise": () => portcullis(systemClock),
  "portcullis-allow": () => portcullisAllow(),
  rlf,
  naive: () => naive(new TurnCachedClock()),
  "naive-precise": () => naive(systemClock),
};
const make = impls[impl];
if (!make) throw new Error(`unknown impl ${impl}`);

const keys = Array.from({ length: KEYS }, (_, i) => `k:${i}`);

async function run(c: Checker, ops: number, keyOf: (i: number) => string): Promise<number> {
  const t0 = process.hrtime.bigint();
  if (c.async) {
    const BATCH = 1000;
    const pending: Promise<unknown>[] = new Array(BATCH);
    for (let i = 0; i < ops; i += BATCH) {
      for (let j = 0; j < BATCH; j++) pending[j] = c.check(keyOf(i + j)) as Promise<unknown>;
      await Promise.all(pending);
    }
  } else {
    let allowed = 0;
    for (let i = 0; i < ops; i++) if (c.check(keyOf(i))) allowed++;
    if (allowed !== ops) throw new Error(`unexpected rejections: ${ops - allowed}`);
  }
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function main(): Promise<void> {
  if (scenario === "memory") {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (!gc) throw new Error("run with --expose-gc");
    gc();
    gc();
    const before = process.memoryUsage();
    const c = make!();
    await run(c, KEYS, (i) => keys[i]!);
    gc();
    gc();
    const after = process.memoryUsage();
    const heap = (after.heapUsed - before.heapUsed) / KEYS;
    const external = (after.external - before.external) / KEYS;
    console.log(JSON.stringify({ impl, scenario, heapPerKey: heap, externalPerKey: external, keep: c !== undefined }));
    return;
  }
  const c = make!();
  const hot = scenario === "hot";
  const ops = hot ? HOT_OPS : KEY_OPS;
  const keyOf = hot ? () => "hot" : (i: number) => keys[i % KEYS]!;
  await run(c, hot ? ops / 10 : KEYS, keyOf); // warm up (for keys: inserts every key once)
  const secs = await run(c, ops, keyOf);
  console.log(JSON.stringify({ impl, scenario, opsPerSec: ops / secs }));
}

await main();
