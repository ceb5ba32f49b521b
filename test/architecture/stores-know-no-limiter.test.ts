/**
 * Stores know nothing of limiters: no file under src/stores imports (or
 * re-exports, or dynamically imports) anything under src/limiter. The check
 * reads the import graph from the sources, so it holds for type-only
 * imports too.
 */
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, test } from "node:test";

const root = resolve(import.meta.dirname, "../..");

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** Every module specifier of `text`: static imports, re-exports, dynamic imports, import types. */
export function specifiers(text: string): string[] {
  const found: string[] = [];
  const patterns = [/\b(?:import|export)\s[^;]*?\sfrom\s*["']([^"']+)["']/g, /\bimport\s*["']([^"']+)["']/g, /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g];
  for (const re of patterns) for (const m of text.matchAll(re)) found.push(m[1]!);
  return found;
}

/** Files under `from` importing a module under `forbidden` (relative paths). */
function violations(from: string, forbidden: string): string[] {
  const bad: string[] = [];
  for (const file of sources(join(root, from))) {
    for (const spec of specifiers(readFileSync(file, "utf8"))) {
      if (!spec.startsWith(".")) continue;
      const target = relative(root, resolve(dirname(file), spec));
      if (target === forbidden || target.startsWith(forbidden + "/")) bad.push(`${relative(root, file)} imports ${spec}`);
    }
  }
  return bad;
}

describe("layering", () => {
  test("no file under src/stores imports from src/limiter", () => {
    assert.deepEqual(violations("src/stores", "src/limiter"), []);
  });

  test("the check sees every form of import (it would catch a violation)", () => {
    const text = [
      `import { RateLimiter } from "../limiter/rate-limiter.js";`,
      `import type { Decision } from "../../limiter/decision.js";`,
      `export { LimiterSet } from "../limiter/limiter-set.js";`,
      `import {\n  a,\n  b,\n} from "../limiter/x.js";`,
      `const m = await import("../limiter/y.js");`,
      `import "../limiter/z.js";`,
    ].join("\n");
    assert.deepEqual(specifiers(text).sort(), [
      "../../limiter/decision.js",
      "../limiter/limiter-set.js",
      "../limiter/rate-limiter.js",
      "../limiter/x.js",
      "../limiter/y.js",
      "../limiter/z.js",
    ]);
  });
});
