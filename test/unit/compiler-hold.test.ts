/**
 * `portcullis run` holds V8's optimising compilers off while it starts
 * (src/cli/compiler-hold.ts). Held, a hot function stays in the interpreter;
 * released, the same function is optimised again, so traffic after startup
 * gets compiled code. Run in a child node with V8's natives syntax, which
 * reports a function's optimisation state.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { test } from "node:test";
import assert from "node:assert/strict";

const root = new URL("../..", import.meta.url).pathname;
/** V8's OptimizationStatus bit for "has optimised code" (src/runtime/runtime.h). */
const OPTIMIZED = 1 << 4;

function statesIn(script: string, execArgv: string[] = []): { held: number; released: number } {
  const hold = pathToFileURL(join(root, "dist/cli/compiler-hold.js")).href;
  const code = `
    const { holdOptimizingCompilers } = await import(${JSON.stringify(hold)});
    function hot(n) { let s = 0; for (let i = 0; i < n; i++) s += i % 7; return s; }
    const spin = async () => { for (let r = 0; r < 20; r++) { for (let i = 0; i < 5000; i++) hot(200); await new Promise((ok) => setTimeout(ok, 5)); } };
    ${script}
  `;
  const out = execFileSync(process.execPath, [...execArgv, "--allow-natives-syntax", "--input-type=module", "-e", code], { encoding: "utf8", timeout: 60_000 });
  return JSON.parse(out) as { held: number; released: number };
}

test("held, a hot function is not optimised; released, it is", { timeout: 90_000 }, () => {
  const { held, released } = statesIn(`
    const release = holdOptimizingCompilers();
    await spin();
    const held = %GetOptimizationStatus(hot);
    release();
    await spin();
    console.log(JSON.stringify({ held, released: %GetOptimizationStatus(hot) }));
  `);
  assert.equal(held & OPTIMIZED, 0, `held: status ${held.toString(2)}`);
  assert.notEqual(released & OPTIMIZED, 0, `released: status ${released.toString(2)}`);
});

test("holding twice returns the one release, and releasing twice turns nothing off", { timeout: 90_000 }, () => {
  const { held, released } = statesIn(`
    const release = holdOptimizingCompilers();
    const again = holdOptimizingCompilers();
    if (again !== release) throw new Error("a second hold made a second release");
    await spin();
    const held = %GetOptimizationStatus(hot);
    release();
    again();
    await spin();
    console.log(JSON.stringify({ held, released: %GetOptimizationStatus(hot) }));
  `);
  assert.equal(held & OPTIMIZED, 0, `held: status ${held.toString(2)}`);
  assert.notEqual(released & OPTIMIZED, 0, `released: status ${released.toString(2)}`);
});

test("a compiler the operator turned off stays off after the release", { timeout: 90_000 }, () => {
  const { held, released } = statesIn(
    `
    const release = holdOptimizingCompilers();
    await spin();
    const held = %GetOptimizationStatus(hot);
    release();
    await spin();
    console.log(JSON.stringify({ held, released: %GetOptimizationStatus(hot) }));
  `,
    ["--no-maglev", "--no-turbofan"],
  );
  assert.equal(held & OPTIMIZED, 0, `held: status ${held.toString(2)}`);
  assert.equal(released & OPTIMIZED, 0, `released: status ${released.toString(2)}`);
});
