/**
 * `npm run stress [-- name ...] [--seed N] [--quick] [--key value ...]`: the
 * attack suite, against real `portcullis run` processes. Runs every scenario
 * (or those whose name contains one of the given words) one after another,
 * each bounded in time, prints a progress line per scenario on stderr and a
 * table at the end: scenario, parameters, key numbers, pass/fail against the
 * targets. Exits 1 if any scenario failed. Not part of `npm test` (the test
 * suite runs small versions: test/stress/).
 *
 *   npm run stress                          everything, full size (the soak alone takes 5 minutes)
 *   npm run stress -- fuzz --seed 42        the fuzzer only, another seed
 *   npm run stress -- soak --soak-seconds 60
 *   npm run stress -- --quick               small versions of everything
 */
import os from "node:os";
import { fuzz } from "./fuzz.js";
import type { StressOptions, StressResult, StressScenario } from "./scenario.js";
import { authFloodScenario, ipChurnScenario } from "./scenarios.js";
import { soak } from "./soak.js";

/** Flags that take no value: a word after them is a scenario name. */
const BOOLEAN_FLAGS = new Set(["quick"]);

function parseArgs(argv: string[]): { words: string[]; opts: StressOptions } {
  const args: Record<string, string> = {};
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--")) {
      words.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    if (eq > 0) args[a.slice(2, eq)] = a.slice(eq + 1);
    else if (!BOOLEAN_FLAGS.has(a.slice(2)) && i + 1 < argv.length && !argv[i + 1]!.startsWith("--")) args[a.slice(2)] = argv[++i]!;
    else args[a.slice(2)] = "true";
  }
  const seed = Number(args.seed ?? 1);
  if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer, got ${JSON.stringify(args.seed)}`);
  return { words, opts: { seed, quick: args.quick === "true", args, progress: (line) => console.error(`  ${line}`) } };
}

function cell(r: StressResult): string {
  return Object.entries(r)
    .filter(([k]) => k !== "params" && k !== "pass")
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]): string => `| ${r.map((x, c) => x.padEnd(widths[c]!)).join(" | ")} |`;
  return [line(rows[0]!), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.slice(1).map(line)].join("\n");
}

const { words, opts } = parseArgs(process.argv.slice(2));
const all: StressScenario[] = [ipChurnScenario, authFloodScenario, fuzz, soak];
const chosen = all.filter((s) => words.length === 0 || words.some((w) => s.name.includes(w)));
if (chosen.length === 0) {
  console.error(`no scenario matches ${words.join(" ")}; scenarios: ${all.map((s) => s.name).join(", ")}`);
  process.exit(2);
}
// Each scenario bounds itself; this is the backstop if one hangs.
const limitMs = Number(opts.args["scenario-timeout"] ?? 15 * 60) * 1000;

console.log(`# Portcullis attack suite — ${new Date().toISOString()}`);
console.log(`# node ${process.version}, ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, load ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}, seed ${opts.seed}${opts.quick ? ", quick" : ""}`);
const rows: string[][] = [["scenario", "parameters", "numbers", "result"]];
let failed = 0;
for (const [i, s] of chosen.entries()) {
  const tag = `[${i + 1}/${chosen.length}] ${s.name}`;
  console.error(`${tag}: running`);
  const t0 = Date.now();
  let r: StressResult;
  let timer: NodeJS.Timeout | undefined;
  try {
    r = await Promise.race([
      s.run(opts),
      new Promise<never>((_, rej) => {
        timer = setTimeout(() => rej(new Error(`did not finish within ${limitMs / 1000} s`)), limitMs);
      }),
    ]);
  } catch (err) {
    r = { params: "-", error: err instanceof Error ? err.message.split("\n")[0]! : String(err), pass: "no" };
  } finally {
    clearTimeout(timer);
  }
  const verdict = r.pass === "yes" ? "pass" : r.pass === "n/a" ? "n/a" : "FAIL";
  if (verdict === "FAIL") failed++;
  console.error(`${tag}: ${verdict} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  rows.push([s.name, String(r.params ?? "-"), cell(r), verdict]);
}
console.log(`\n${table(rows)}`);
process.exit(failed > 0 ? 1 : 0);
