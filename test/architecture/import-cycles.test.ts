import assert from "node:assert/strict";
import { test } from "node:test";
import { findCycles, importGraph, importGraphOf } from "./import-graph.js";

const root = new URL("../..", import.meta.url).pathname;

test("src/ has no import cycle (type-only imports count)", () => {
  const graph = importGraphOf(root, "src");
  // The reader sees the tree: a few hundred modules, and the engine's known edges.
  assert.ok(graph.size > 100, `only ${graph.size} modules read`);
  assert.ok(graph.get("src/limiter/rate-limiter.ts")?.includes("src/algorithms/outcome.ts"));
  const cycles = findCycles(graph);
  assert.deepEqual(
    cycles.map((c) => c.join(" -> ")),
    [],
    "import cycles (break each by moving the shared part down a layer, docs/architecture.md)",
  );
});

test("a cycle through three modules is reported as its path", () => {
  const graph = importGraph(
    new Map([
      ["src/a/one.ts", 'import { two } from "../b/two.js";\nexport const one = 1;'],
      ["src/b/two.ts", 'export { three } from "./three.js";\nexport const two = 2;'],
      ["src/b/three.ts", 'import type { One } from "../a/one.js";\nexport const three = 3;'],
      ["src/c/free.ts", 'import { one } from "../a/one.js";'],
    ]),
  );
  assert.deepEqual(findCycles(graph), [["src/a/one.ts", "src/b/two.ts", "src/b/three.ts", "src/a/one.ts"]]);
});

test("a dynamic import and a module importing itself are cycles too; a chain is not", () => {
  const graph = importGraph(
    new Map([
      ["src/x.ts", 'export async function f() { return import("./y.js"); }'],
      ["src/y.ts", 'import "./x.js";'],
      ["src/self.ts", 'import * as me from "./self.js";'],
      ["src/p.ts", 'import "./q.js";'],
      ["src/q.ts", 'import "node:fs";\nimport "zod";'],
    ]),
  );
  assert.deepEqual(findCycles(graph), [
    ["src/self.ts", "src/self.ts"],
    ["src/x.ts", "src/y.ts", "src/x.ts"],
  ]);
});
