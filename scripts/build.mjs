#!/usr/bin/env node
// Compiles src/ to dist/ and copies the static files tsc does not (the admin dashboard's assets).
//
//   node scripts/build.mjs           incremental: compiles what changed (a few seconds when nothing did)
//   node scripts/build.mjs --clean   from nothing: no file of a removed module is left in dist/ (prepack)
//
// npm runs it on `prepare` (so `npm ci` in a clone builds dist/), on `prepack`
// (clean, so a packed tarball holds exactly today's modules), before `npm start`,
// and the test runner runs it before any test, so the CLI the tests spawn is
// never older than the source.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const root = new URL("..", import.meta.url).pathname;
const dist = `${root}dist`;

if (process.argv.includes("--clean")) rmSync(dist, { recursive: true, force: true });

const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const r = spawnSync(process.execPath, [tsc, "-p", `${root}tsconfig.build.json`], { cwd: root, stdio: "inherit" });
if (r.status !== 0) {
  console.error("build: tsc failed (see above); dist/ is not up to date");
  process.exit(r.status ?? 1);
}

const assets = `${root}src/admin/assets`;
if (existsSync(assets)) cpSync(assets, `${dist}/admin/assets`, { recursive: true });

// When this build finished: test/helpers/cli.ts refuses to drive a dist/ older than src/.
writeFileSync(`${dist}/.built`, `${new Date().toISOString()}\n`);
