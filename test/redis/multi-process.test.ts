import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { REDIS_URL, deletePrefix, uniquePrefix } from "./helpers.js";

const worker = fileURLToPath(new URL("./fixtures/hammer-worker.ts", import.meta.url));
const PROCESSES = 3;
const LIMIT = 700;
const CHECKS_EACH = 600; // 1,800 checks against a limit of 700

interface Result {
  allowed: number;
  rejected: number;
  fallback: number;
}

/** Starts the workers, releases them together, collects their counts; bounded by a timeout. */
async function hammer(algorithm: string, prefix: string): Promise<Result[]> {
  const children: ChildProcess[] = [];
  try {
    const outputs = Array.from({ length: PROCESSES }, () => "");
    const ready: Promise<void>[] = [];
    const done: Promise<void>[] = [];
    for (let i = 0; i < PROCESSES; i++) {
      const c = spawn(process.execPath, ["--import", "tsx", worker, REDIS_URL, prefix, algorithm, String(LIMIT), String(CHECKS_EACH)], {
        stdio: ["pipe", "pipe", "inherit"],
      });
      children.push(c);
      ready.push(
        new Promise((resolve, reject) => {
          c.stdout!.on("data", (d: Buffer) => {
            outputs[i] += d.toString();
            if (outputs[i]!.includes("ready")) resolve();
          });
          c.once("exit", (code) => reject(new Error(`worker ${i} exited early with ${code}`)));
        }),
      );
      done.push(new Promise((resolve, reject) => c.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`worker ${i} exited with ${code}`))))));
    }
    await withTimeout(Promise.all(ready), 30_000, "workers ready");
    for (const c of children) c.stdin!.write("go\n");
    await withTimeout(Promise.all(done), 30_000, "workers done");
    return outputs.map((o) => JSON.parse(o.trim().split("\n").pop()!) as Result);
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

describe("separate processes share one limit exactly", () => {
  const prefixes: string[] = [];
  after(async () => {
    for (const p of prefixes) await deletePrefix(p);
  });

  for (const algorithm of ["gcra", "fixed_window"]) {
    test(`${algorithm}: ${PROCESSES} processes x ${CHECKS_EACH} checks on one key admit exactly ${LIMIT}`, { timeout: 90_000 }, async () => {
      const prefix = uniquePrefix(`mp-${algorithm}`);
      prefixes.push(prefix);
      const results = await hammer(algorithm, prefix);
      const allowed = results.reduce((n, r) => n + r.allowed, 0);
      const total = results.reduce((n, r) => n + r.allowed + r.rejected, 0);
      assert.equal(total, PROCESSES * CHECKS_EACH);
      for (const r of results) assert.equal(r.fallback, 0, "every decision came from Redis");
      assert.equal(allowed, LIMIT);
    });
  }
});
