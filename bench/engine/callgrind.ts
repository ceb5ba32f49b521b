/**
 * The memory hot path for instruction counts: `N` checks (or allows) on one
 * hot key of a GCRA limit that never rejects, and nothing else. Run it under
 * valgrind --tool=callgrind at two N and divide the difference of the
 * instruction totals by the difference of N: the start-up and the JIT's
 * warm-up cancel out, and the count does not depend on the machine's load
 * (docs/benchmarks.md, "Engine instruction counts").
 *
 *   callgrind.ts <N> [check|allow] [hot|keys]
 */
// The limiter module alone: the root entry also loads the gateway, whose start-up would drown the count.
import { createLimiter } from "../../src/limiter/create-limiter.js";

const n = Number(process.argv[2] ?? 0);
const mode = process.argv[3] ?? "check";
const scenario = process.argv[4] ?? "hot";
const l = createLimiter({ algorithm: "gcra", rate: 1, periodMs: 3_600_000, burst: 1e12, name: "cg" });
const keys = scenario === "keys" ? Array.from({ length: 100_000 }, (_, i) => `k:${i}`) : ["hot"];
let ok = 0;
if (mode === "allow") {
  for (let i = 0; i < n; i++) if (l.allow(keys[i % keys.length]!)) ok++;
} else {
  for (let i = 0; i < n; i++) if (l.check(keys[i % keys.length]!).allowed) ok++;
}
console.log(ok);
