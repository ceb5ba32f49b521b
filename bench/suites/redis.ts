/**
 * The Redis store: Portcullis GCRA (batched: the decisions of one tick are
 * one script call) against rate-limiter-flexible's RateLimiterRedis on
 * ioredis, and Portcullis without batching (one EVALSHA per decision), on
 * the same Redis in the same run, 64 decisions in flight, on one hot key,
 * over 100,000 distinct keys that exist (each touched once before the
 * measurement) and over 100,000 keys that do not (every decision creates
 * its key). The ceiling of one script call per decision is
 * measured with redis-benchmark (pipeline 16) running EVALSHA of the same
 * rate script with one operation. Each measurement runs in a fresh process;
 * the table shows the median of BENCH_RUNS (default 3) interleaved runs.
 */
import { execFileSync } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { RATE_SCRIPT } from "../../src/stores/redis/scripts/rate.js";

export const title = "Redis store: batched GCRA vs rate-limiter-flexible RateLimiterRedis, 64 in flight";

const worker = fileURLToPath(new URL("../redis/worker.ts", import.meta.url));
const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

interface Result {
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

function measure(impl: string, scenario: string, prefix: string): Result {
  const out = execFileSync(process.execPath, ["--import", "tsx", worker, impl, scenario, url, prefix], { encoding: "utf8", timeout: 60_000 });
  return JSON.parse(out.trim().split("\n").pop()!) as Result;
}

function median(rs: Result[]): Result {
  const by = [...rs].sort((a, b) => a.opsPerSec - b.opsPerSec);
  return by[Math.floor(by.length / 2)]!;
}

/** redis-benchmark's requests/s for EVALSHA of the one-operation rate script. */
function ceiling(scenario: string, prefix: string): number {
  const u = new URL(url);
  const sha = createHash("sha1").update(RATE_SCRIPT).digest("hex");
  const key = scenario === "hot" ? `${prefix}{rb:hot}` : `${prefix}{rb:__rand_int__}`;
  const spec = "g 1e-06 1 1000000000 1000";
  const args = ["-h", u.hostname, "-p", u.port || "6379", "-n", "100000", "-c", "64", "-P", "16", "-r", "100000", "-q", "EVALSHA", sha, "1", key, "each", spec, "", "0", "1", "1"];
  const out = execFileSync("redis-benchmark", args, { encoding: "utf8", timeout: 60_000 });
  const m = /([\d.]+) requests per second/.exec(out.replace(/\r/g, "\n"));
  if (!m) throw new Error(`unexpected redis-benchmark output: ${out}`);
  return Number(m[1]);
}

const k = (n: number) => `${(n / 1e3).toFixed(0)} k/s`;
const ms = (n: number) => `${n.toFixed(2)} ms`;

export async function run(): Promise<void> {
  const runs = Number(process.env.BENCH_RUNS ?? 3);
  const prefix = `bench:${randomUUID().slice(0, 8)}:`;
  const client = new Redis(url);
  await client.script("LOAD", RATE_SCRIPT);
  client.disconnect();
  const impls = ["portcullis", "rlf", "portcullis-unbatched"];
  const res: Record<string, Record<string, Result>> = {};
  const ceil: Record<string, number> = {};
  for (const scenario of ["hot", "keys", "cold"]) {
    const samples: Record<string, Result[]> = Object.fromEntries(impls.map((i) => [i, []]));
    for (let r = 0; r < runs; r++) {
      // Rotate the order so no implementation always runs first (or last) on a shared machine.
      for (let j = 0; j < impls.length; j++) {
        const impl = impls[(j + r) % impls.length]!;
        samples[impl]!.push(measure(impl, scenario, prefix));
      }
    }
    for (const impl of impls) (res[impl] ??= {})[scenario] = median(samples[impl]!);
    if (scenario !== "cold") ceil[scenario] = ceiling(scenario, prefix);
  }
  console.log("| implementation | hot key | p50 / p99 | 100,000 keys | p50 / p99 | 100,000 new keys | p50 / p99 |");
  console.log("|---|---|---|---|---|---|---|");
  for (const impl of impls) {
    const cells = ["hot", "keys", "cold"].map((s) => {
      const r = res[impl]![s]!;
      return `${k(r.opsPerSec)} | ${ms(r.p50Ms)} / ${ms(r.p99Ms)}`;
    });
    console.log(`| ${impl} | ${cells.join(" | ")} |`);
  }
  console.log(`| redis-benchmark EVALSHA, 1 decision per call, -P 16 (ceiling) | ${k(ceil.hot!)} | | ${k(ceil.keys!)} | | | |`);
  const p = res.portcullis!;
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
  console.log("");
  console.log(`hot key:     portcullis / rlf = ${ratio(p.hot!.opsPerSec, res.rlf!.hot!.opsPerSec)} (target >= 2x); / one-call-per-decision ceiling = ${ratio(p.hot!.opsPerSec, ceil.hot!)}`);
  console.log(`100k keys:   portcullis / rlf = ${ratio(p.keys!.opsPerSec, res.rlf!.keys!.opsPerSec)} (target >= 2x); / one-call-per-decision ceiling = ${ratio(p.keys!.opsPerSec, ceil.keys!)}`);
  console.log(`new keys:    portcullis / rlf = ${ratio(p.cold!.opsPerSec, res.rlf!.cold!.opsPerSec)} (every decision creates its key)`);
}
