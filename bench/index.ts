/**
 * `npm run bench [-- name ...]`: runs every suite in bench/suites (or those
 * whose file name contains one of the given words), each printing its own
 * side-by-side table with ratios against the peer it is compared to.
 */
import { readdirSync } from "node:fs";
import os from "node:os";

interface Suite {
  title: string;
  run(): Promise<void>;
}

const dir = new URL("./suites/", import.meta.url);
const filters = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".ts"))
  .filter((f) => filters.length === 0 || filters.some((w) => f.includes(w)))
  .sort();

console.log(`# Portcullis benchmarks — ${new Date().toISOString()}`);
console.log(`# node ${process.version}, ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`);
const failed: string[] = [];
for (const f of files) {
  const suite = (await import(new URL(f, dir).href)) as Suite;
  console.log(`\n## ${suite.title}  (bench/suites/${f})`);
  const started = Date.now();
  try {
    await suite.run();
  } catch (err) {
    // One suite missing a tool or failing must not cost the others' numbers.
    console.log(`FAILED: ${err instanceof Error ? err.message : String(err)}`);
    failed.push(f);
  }
  console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
}
if (failed.length > 0) {
  console.log(`\n${failed.length} suite(s) failed: ${failed.join(", ")}`);
  process.exitCode = 1;
}
