#!/usr/bin/env node
// Runs the whole test suite with Node's test runner (TypeScript through tsx).
// It first builds dist/ (incremental, scripts/build.mjs): tests that spawn the
// CLI drive the built bin/portcullis.js, and a stale build is never tested.
// Before the tests it makes sure Redis and PostgreSQL answer: it uses
// REDIS_URL / DATABASE_URL (default: the local services), and when nothing
// answers it starts a throw-away redis-server / PostgreSQL cluster from PATH
// on a free port, or fails with one line naming the Debian package to install.
// Tools the tests spawn (curl, fail2ban, promtool, chromium...) are checked the
// same way (scripts/system-deps.mjs).
//
//   npm test                      all tests
//   npm test -- test/unit/gcra    only files whose path contains one of the words
//
// Files named *.timing.test.ts measure rates on real sockets; they run after
// the others, one file at a time, so no other test competes for the CPU.
import { spawn, spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { ensureServices } from "./services.mjs";
import { missingFor } from "./system-deps.mjs";

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

// Tools the selected tests drive for real (curl, openssl, fail2ban, promtool,
// chromium): a missing one fails the run here in one line, not as ENOENT in a test.
const lacking = missingFor(root, files);
if (lacking.length > 0) {
  console.error(`these tests need Debian packages that are not installed: apt-get install -y ${lacking.join(" ")}`);
  process.exit(1);
}

// The CLI the tests spawn is the built one: build before anything runs (a few seconds when nothing changed).
const build = spawnSync(process.execPath, [join(root, "scripts/build.mjs")], { cwd: root, stdio: "inherit" });
if (build.status !== 0) {
  console.error("tests: the build failed (see above); no test was run");
  process.exit(1);
}

const services = await ensureServices();
const env = { ...process.env, ...services.env };
console.log(`tests: ${files.length} files; redis ${env.REDIS_URL}; postgres ${env.DATABASE_URL}`);

function runFiles(list, concurrency) {
  // Every test is bounded (5 min), and a file whose test ended but left a handle open (a stuck socket) exits
  // anyway: a hang fails the run in bounded time instead of holding it until CI's own limit.
  const args = ["--import", "tsx", "--test", "--test-reporter=spec", `--test-concurrency=${concurrency}`, "--test-timeout=300000", "--test-force-exit", ...list];
  const child = spawn(process.execPath, args, { cwd: root, env, stdio: "inherit" });
  return new Promise((resolve) => child.on("exit", (c, sig) => resolve(c ?? (sig ? 1 : 0))));
}

const timing = files.filter((f) => f.endsWith(".timing.test.ts"));
const rest = files.filter((f) => !f.endsWith(".timing.test.ts"));
let code = 0;
if (rest.length) code = (await runFiles(rest, process.env.TEST_CONCURRENCY ?? 2)) || code;
if (timing.length) {
  console.log(`\ntiming tests, one file at a time: ${timing.join(" ")}`);
  code = (await runFiles(timing, 1)) || code;
}
await services.stop();
process.exit(code);
