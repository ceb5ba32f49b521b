/**
 * What importing the package costs a program that starts: each entry of the
 * built package (`import "portcullis"`, `portcullis/redis`, `/http`,
 * `/gateway`) imported in a fresh Node process, against a process that
 * imports nothing. The time is measured inside the child (from process start
 * to the import done, and the CPU time it used), the median of
 * ENTRY_RUNS (default 20) cold processes each.
 *
 * ENTRY_BASELINE=/path/to/other/checkout adds that checkout's built root
 * entry (its dist/index.js) as a row, for a before/after in one run.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

export const title = "Package entries: cold import time of each entry (fresh process, median)";

const root = new URL("../..", import.meta.url).pathname;

interface Sample {
  ms: number;
  cpuMs: number;
}

/** The child prints the time since its start and its CPU time once `file` (or nothing) is imported. */
function sample(file: string | undefined): Sample {
  const load = file === undefined ? "" : `await import(${JSON.stringify(pathToFileURL(file).href)});`;
  const code = `${load} const c = process.cpuUsage(); console.log(JSON.stringify({ ms: performance.now(), cpuMs: (c.user + c.system) / 1000 }));`;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", code], { encoding: "utf8", timeout: 60_000 });
  return JSON.parse(out.trim().split("\n").pop()!) as Sample;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function run(): Promise<void> {
  // The entries are the built ones: build first (incremental).
  execFileSync(process.execPath, [join(root, "scripts/build.mjs")], { stdio: "inherit" });
  const runs = Number(process.env.ENTRY_RUNS ?? 20);
  const entries: Array<[string, string | undefined]> = [
    ["node, no import", undefined],
    ['import "portcullis"', join(root, "dist/index.js")],
    ['import "portcullis/redis"', join(root, "dist/redis.js")],
    ['import "portcullis/http"', join(root, "dist/features/http/index.js")],
    ['import "portcullis/gateway"', join(root, "dist/gateway/index.js")],
  ];
  const baseline = process.env.ENTRY_BASELINE;
  if (baseline) entries.push([`${baseline}: dist/index.js`, join(baseline, "dist/index.js")]);
  const results = new Map<string, Sample[]>(entries.map(([name]) => [name, []]));
  // Interleaved, so a burst of load on the machine falls on every entry alike.
  for (let i = 0; i < runs; i++) for (const [name, file] of entries) results.get(name)!.push(sample(file));
  const bare = median(results.get("node, no import")!.map((s) => s.ms));
  console.log(`| entry | ms from process start (median of ${runs}) | import alone (minus bare node) | CPU ms |`);
  console.log("|---|---:|---:|---:|");
  for (const [name] of entries) {
    const ms = median(results.get(name)!.map((s) => s.ms));
    const cpu = median(results.get(name)!.map((s) => s.cpuMs));
    console.log(`| ${name} | ${ms.toFixed(0)} | ${(ms - bare).toFixed(0)} | ${cpu.toFixed(0)} |`);
  }
}
