// Interleaved A/B of the engine and Redis bench workers of two trees (OLD_TREE, default /tmp/pc-old
// from `git worktree add /tmp/pc-old <commit>` + npm ci; NEW_TREE, default this tree), alternating per
// round, medians per row:  ROUNDS=3 node bench/ab-trees.mjs engine|redis
import { execFileSync } from "node:child_process";
const trees = { old: process.env.OLD_TREE ?? "/tmp/pc-old", new: process.env.NEW_TREE ?? new URL("..", import.meta.url).pathname };
const rounds = Number(process.env.ROUNDS ?? 3);
const which = process.argv[2] ?? "engine";
const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const cases = which === "engine"
  ? [["portcullis", "hot"], ["portcullis", "keys"], ["portcullis-allow", "hot"], ["rlf", "hot"], ["rlf", "keys"]]
  : [["portcullis", "hot"], ["portcullis", "keys"], ["rlf", "hot"], ["rlf", "keys"]];
const res = {};
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? ["old", "new"] : ["new", "old"];
  for (const [impl, sc] of cases) {
    for (const t of order) {
      const worker = `${trees[t]}/bench/${which}/worker.ts`;
      const args = which === "engine"
        ? ["--expose-gc", "--max-old-space-size=4096", "--import", "tsx", worker, impl, sc]
        : ["--import", "tsx", worker, impl, sc, url, `benchab:${t}:${r}:`];
      const out = execFileSync(process.execPath, args, { cwd: trees[t], encoding: "utf8", timeout: 300_000 });
      const v = JSON.parse(out.trim().split("\n").pop()).opsPerSec;
      ((res[t] ??= {})[`${impl} ${sc}`] ??= []).push(v);
      console.error(`round ${r} ${t} ${impl} ${sc}: ${(v / 1e6).toFixed(3)} M/s`);
    }
  }
}
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`| ${which} (median of ${rounds} interleaved rounds) | old 5c8df1c | new | new / old |`);
console.log("|---|---|---|---|");
for (const [impl, sc] of cases) {
  const k = `${impl} ${sc}`;
  const o = med(res.old[k]), n = med(res.new[k]);
  console.log(`| ${k} | ${(o / 1e3).toFixed(0)} k/s | ${(n / 1e3).toFixed(0)} k/s | ${(n / o).toFixed(3)} |`);
}
for (const t of ["old", "new"]) {
  const m = (k) => med(res[t][k]);
  console.log(`${t}: portcullis/rlf hot ${(m("portcullis hot") / m("rlf hot")).toFixed(2)}x, keys ${(m("portcullis keys") / m("rlf keys")).toFixed(2)}x`);
}
