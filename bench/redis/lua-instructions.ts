/**
 * Machine instructions Redis executes for a fixed rate-script workload,
 * counted by valgrind's callgrind: unlike seconds, the count barely moves
 * with whatever else the machine is doing, so two versions of the script
 * compare within about 3% (keys still expire on real time).
 *
 *   node --import tsx bench/redis/lua-instructions.ts [script.lua ...]
 *
 * Without arguments it measures the current rate script; with files, each
 * file is measured as a rate script in turn. Each measurement starts its
 * own redis-server under valgrind on a free port (about 20 s each) and
 * sends CALLS (default 3,000) calls of 32 GCRA checks over KEYS (default
 * 3,200: existing keys, revisited) keys; set KEYS=50000 for keys that are
 * mostly new. Needs valgrind and redis-server on PATH. Not part of
 * `npm run bench`: it is a tool for working on the script.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { RATE_SCRIPT } from "../../src/stores/redis/scripts/rate.js";

const CALLS = Number(process.env.CALLS ?? 3000);
const KEYS = Number(process.env.KEYS ?? 3200);

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, "127.0.0.1");
  await new Promise((r) => s.once("listening", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function instructions(script: string): Promise<number> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "lua-instr-"));
  const port = await freePort();
  const vg = spawn("valgrind", ["--tool=callgrind", `--callgrind-out-file=${dir}/out.%p`, "redis-server", "--port", String(port), "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  const exited = new Promise((r) => vg.once("exit", r));
  try {
    let r: Redis | undefined;
    const deadline = Date.now() + 60_000;
    while (r === undefined) {
      const c = new Redis({ port, lazyConnect: true, retryStrategy: () => null });
      c.on("error", () => {});
      try {
        await c.connect();
        r = c;
      } catch (err) {
        c.disconnect();
        if (Date.now() > deadline) throw new Error(`redis-server under valgrind did not start: ${String(err)}`, { cause: err });
        await new Promise((res) => setTimeout(res, 200));
      }
    }
    const sha = (await r.script("LOAD", script)) as string;
    let k = 0;
    for (let c = 0; c < CALLS; c++) {
      const keys = Array.from({ length: 32 }, () => `li:{k:${k++ % KEYS}}`);
      await r.callBuffer("EVALSHA", sha, 32, ...keys, "each", "g 0.000001 1000 1000000000 1000", "", "0", "32", "1");
      if (c % 500 === 499) process.stderr.write(`  ${c + 1}/${CALLS} calls\n`);
    }
    await r.call("SHUTDOWN", "NOSAVE").catch(() => {});
    r.disconnect();
    // callgrind writes its totals as redis-server exits; bounded, then killed.
    const stopped = await Promise.race([exited.then(() => true), new Promise((res) => setTimeout(() => res(false), 60_000))]);
    if (!stopped) throw new Error("redis-server under valgrind did not exit after SHUTDOWN");
    const out = readdirSync(dir).find((f) => f.startsWith("out."));
    const m = out && /^(?:summary|totals): (\d+)/m.exec(readFileSync(path.join(dir, out), "utf8"));
    if (!m) throw new Error("callgrind wrote no totals");
    return Number(m[1]);
  } finally {
    vg.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

const files = process.argv.slice(2);
const scripts = files.length > 0 ? files.map((f) => [f, readFileSync(f, "utf8")] as const) : [["rate script", RATE_SCRIPT] as const];
for (const [name, body] of scripts) {
  process.stderr.write(`${name}: ${CALLS} calls of 32 keys over ${KEYS} keys under callgrind\n`);
  const n = await instructions(body);
  console.log(`${name}\t${(n / 1e6).toFixed(0)} M instructions\t${(n / CALLS / 32).toFixed(0)} per decision (start-up included)`);
}
