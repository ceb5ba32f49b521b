/**
 * portcullis/http type-checks in a project without Express or Fastify: no
 * declaration file it ships imports their types or augments their modules
 * (the frameworks are optional peers; a missing module in a .d.ts fails a
 * strict project's type check). Reads the built declarations (npm test builds first).
 */
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

const root = new URL("../../../dist/features/http", import.meta.url).pathname;

function declarations(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...declarations(p));
    else if (name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

test("no declaration under dist/features/http names express or fastify as a module", () => {
  const files = declarations(root);
  assert.ok(files.some((f) => f.endsWith("rate-limit.d.ts")) && files.some((f) => f.endsWith("fastify-plugin.d.ts")), "the one-liners' declarations are built");
  const framework = /(?:from\s+|import\(\s*|declare\s+module\s+|require\(\s*)["'](?:express|fastify|@fastify\/[^"']+|@types\/express)["']/;
  const offending = files.filter((f) => framework.test(readFileSync(f, "utf8")));
  assert.deepEqual(offending, []);
});
