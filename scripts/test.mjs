#!/usr/bin/env node
// Runs the whole test suite with Node's test runner (TypeScript through tsx).
// Before the tests it makes sure Redis and PostgreSQL answer: it uses
// REDIS_URL / DATABASE_URL (default: the local services), and when nothing
// answers it starts a throw-away redis-server / PostgreSQL cluster from PATH
// on a free port, or fails with one line naming the Debian package to install.
//
//   npm test                      all tests
//   npm test -- test/unit/gcra    only files whose path contains one of the words
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { ensureServices } from "./services.mjs";

const root = new URL("..", import.meta.url).pathname;
const filters = process.argv.slice(2).filter((a) => !a.startsWith("--"));

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

const files = findTests(join(root, "test"))
  .map((f) => relative(root, f))
  .filter((f) => filters.length === 0 || filters.some((w) => f.includes(w)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(" ") || "test/**/*.test.ts"}`);
  process.exit(1);
}

const services = await ensureServices();
const env = { ...process.env, ...services.env };
console.log(`tests: ${files.length} files; redis ${env.REDIS_URL}; postgres ${env.DATABASE_URL}`);

const args = ["--import", "tsx", "--test", "--test-reporter=spec", `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`, ...files];
const child = spawn(process.execPath, args, { cwd: root, env, stdio: "inherit" });
const code = await new Promise((resolve) => child.on("exit", (c, sig) => resolve(c ?? (sig ? 1 : 0))));
await services.stop();
process.exit(code);
