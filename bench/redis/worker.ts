/**
 * One Redis measurement in a fresh process: `worker.ts <impl> <scenario>
 * <url> <prefix>` prints one JSON line {opsPerSec, p50Ms, p99Ms}.
 * impl: portcullis (batched) | portcullis-unbatched (one script call per
 * decision) | rlf (rate-limiter-flexible RateLimiterRedis on ioredis).
 * scenario: hot (one key) | keys (100,000 distinct keys, round-robin, each
 * touched once before the measurement: the steady state of 100,000 active
 * subjects) | cold (100,000 keys never seen before, each decided once: every
 * decision creates its key). 64 decisions are in flight at all times.
 */
import { Redis } from "ioredis";
import { RateLimiterRedis } from "rate-limiter-flexible";
import { RedisRateLimiter, RedisStore } from "../../src/redis.js";

const [impl = "portcullis", scenario = "hot", url = "redis://127.0.0.1:6379", prefix = "bench:"] = process.argv.slice(2);
const IN_FLIGHT = 64;
const KEYS = 100_000;
const OPS = scenario === "cold" ? KEYS : Number(process.env.BENCH_REDIS_OPS ?? 200_000);
// Warms the code; in the keys scenario, also creates every key once.
const WARMUP = scenario === "keys" ? KEYS : Math.floor(OPS / 10);
// Limits that never reject (the decision path is measured, not rejections)
// and whose keys expire on their own within seconds.
const BIG = 1e9;

type Check = (key: string) => Promise<unknown>;

async function make(): Promise<{ check: Check; close: () => Promise<void> }> {
  if (impl === "rlf") {
    const client = new Redis(url, { enableOfflineQueue: true });
    const l = new RateLimiterRedis({ storeClient: client, keyPrefix: `${prefix}rlf`, points: BIG, duration: 1 });
    return { check: (k) => l.consume(k), close: async () => void client.disconnect() };
  }
  // The store's defaults, unless BENCH_MAX_BATCH asks for another batch size.
  const maxBatch = impl === "portcullis" ? (process.env.BENCH_MAX_BATCH === undefined ? undefined : Number(process.env.BENCH_MAX_BATCH)) : 1;
  const store = new RedisStore({ url, prefix, timeoutMs: 1000, ...(maxBatch === undefined ? {} : { maxBatch }) });
  if (!(await store.ready(5000))) throw new Error("redis did not answer");
  const l = new RedisRateLimiter({ store, name: "bench", algorithm: "gcra", rate: BIG, burst: BIG });
  return {
    check: async (k) => {
      const d = await l.check(k);
      if (!d.allowed) throw new Error("unexpected rejection");
    },
    close: async () => {
      if (store.counters.fallbackDecisions > 0) throw new Error(`${store.counters.fallbackDecisions} decisions fell back`);
      await store.close();
    },
  };
}

// Cold keys are new to every run (and their warm-up uses other new keys).
const run = `${process.pid}:${Date.now()}`;
const keys = Array.from({ length: KEYS }, (_, i) => (scenario === "cold" ? `c:${run}:${i}` : `k:${i}`));
const warmKeys = scenario === "cold" ? Array.from({ length: KEYS }, (_, i) => `w:${run}:${i}`) : keys;
const keyOf = scenario === "hot" ? () => "hot" : (i: number) => keys[i % KEYS]!;
const warmKeyOf = scenario === "hot" ? () => "hot" : (i: number) => warmKeys[i % KEYS]!;

async function drive(check: Check, ops: number, lat: Float64Array | undefined, keyOf: (i: number) => string): Promise<number> {
  let next = 0;
  const t0 = process.hrtime.bigint();
  async function lane(): Promise<void> {
    while (next < ops) {
      const i = next++;
      const s = process.hrtime.bigint();
      await check(keyOf(i));
      if (lat) lat[i] = Number(process.hrtime.bigint() - s) / 1e6;
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const { check, close } = await make();
await drive(check, WARMUP, undefined, warmKeyOf);
const lat = new Float64Array(OPS);
const secs = await drive(check, OPS, lat, keyOf);
await close();
lat.sort();
console.log(JSON.stringify({ impl, scenario, opsPerSec: OPS / secs, p50Ms: lat[Math.floor(OPS * 0.5)], p99Ms: lat[Math.floor(OPS * 0.99)] }));
