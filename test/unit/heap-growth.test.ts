/**
 * `portcullis run` bounds V8's old-generation growth (src/cli/heap-growth.ts):
 * the operator's flag or variable decides the percent, and with the bound a
 * program that promotes short-lived objects keeps its old generation near its
 * live size, where V8's adaptive factor lets it grow to several times that.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_HEAP_GROWING_PERCENT, HEAP_GROWING_ENV, heapGrowingPercent } from "../../src/cli/heap-growth.js";
import { runCli } from "../helpers/cli.js";

const root = new URL("../..", import.meta.url).pathname;

test("the percent: default, the variable, 0 for V8's own, the operator's node flag left alone", () => {
  assert.equal(heapGrowingPercent([], {}), DEFAULT_HEAP_GROWING_PERCENT);
  assert.equal(heapGrowingPercent([], { [HEAP_GROWING_ENV]: "50" }), 50);
  assert.equal(heapGrowingPercent([], { [HEAP_GROWING_ENV]: "0" }), undefined);
  assert.equal(heapGrowingPercent(["--heap-growing-percent=80"], {}), undefined);
  assert.equal(heapGrowingPercent(["--heap_growing_percent=80"], { [HEAP_GROWING_ENV]: "50" }), undefined);
  assert.equal(heapGrowingPercent([], { NODE_OPTIONS: "--inspect --heap-growing-percent=10" }), undefined);
  assert.throws(() => heapGrowingPercent([], { [HEAP_GROWING_ENV]: "1.5" }), /whole number/);
  assert.throws(() => heapGrowingPercent([], { [HEAP_GROWING_ENV]: "lots" }), /whole number/);
});

test("bounded, promoted garbage keeps the old generation within about twice its live size", { timeout: 90_000 }, () => {
  const mod = pathToFileURL(join(root, "dist/cli/heap-growth.js")).href;
  // 50 MiB live; a ring of 50,000 objects each outliving two scavenges, replaced 3 million times.
  const code = `
    const v8 = await import("node:v8");
    const { limitHeapGrowth } = await import(${JSON.stringify(mod)});
    limitHeapGrowth([], {});
    const old = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === "old_space");
    const live = Array.from({ length: 300000 }, (_, i) => ({ k: "key-" + i, a: i, b: [i] }));
    const ring = new Array(50000);
    let max = 0;
    for (let i = 0; i < 3000000; i++) {
      ring[i % ring.length] = { k: "conn-" + i, buf: [i, i + 1, i + 2], s: { t: i } };
      if (i % 20000 === 0) max = Math.max(max, old().space_size);
    }
    gc();
    console.log(JSON.stringify({ max, live: old().space_used_size, n: live.length }));
  `;
  const out = execFileSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", code], { encoding: "utf8", timeout: 80_000 });
  const { max, live } = JSON.parse(out) as { max: number; live: number };
  // Unbounded, V8's factor (up to 4) took this old generation to about 4.6 times its live size.
  assert.ok(max < 3 * live, `old generation peaked at ${(max / 2 ** 20).toFixed(0)} MiB for ${(live / 2 ** 20).toFixed(0)} MiB live`);
});

test("run exits 2 naming the variable when PORTCULLIS_HEAP_GROWING_PERCENT is not a whole number", async () => {
  const r = await runCli(["run", "-c", "examples/portcullis.toml"], { env: { PATH: process.env.PATH, [HEAP_GROWING_ENV]: "lots" } });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /PORTCULLIS_HEAP_GROWING_PERCENT/);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});
