#!/usr/bin/env node
// Runs the compiled CLI (dist/). In a checkout, `npm ci` builds dist/ (the
// `prepare` script) and `npm run build` refreshes it; the test runner and
// `npm start` build before they run, so neither drives a stale build.
import { existsSync } from "node:fs";

const main = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(main)) {
  console.error("portcullis: dist/ is missing; run `npm run build` in this checkout");
  process.exit(1);
}
// `run` holds V8's optimising compilers off until its listeners are up (src/cli/compiler-hold.ts):
// held before anything else loads, since resolving the very first modules already makes V8 compile.
if (process.argv[2] === "run") (await import(new URL("../dist/cli/compiler-hold.js", import.meta.url).href)).holdOptimizingCompilers();
const { cli } = await import(main.href);
process.exitCode = await cli(process.argv.slice(2)).catch((err) => {
  console.error(`portcullis: ${err instanceof Error ? err.message : String(err)}`);
  return 1;
});
// The command is done: a handle left open somewhere must not keep the process alive past a stop.
setTimeout(() => process.exit(), 3000).unref();
