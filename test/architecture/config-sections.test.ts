/**
 * Each feature's configuration section stands alone: it imports only the
 * configuration primitives (src/config), src/core, src/net and its own
 * feature's files, never the root schema (src/gateway/config/schema.ts),
 * another feature or the rest of the gateway; the root schema composes the
 * sections. Read from the import graph, so type-only imports count.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type ImportGraph, importGraph, importGraphOf } from "./import-graph.js";

const root = new URL("../..", import.meta.url).pathname;

const ROOT_SCHEMA = "src/gateway/config/schema.ts";

/** Folders every section may import. */
const SHARED = ["src/config/", "src/core/", "src/net/"];

/** Each feature: its section files and the folders that are its own. */
const FEATURES: Record<string, { sections: string[]; own: string[] }> = {
  bandwidth: { sections: ["src/features/bandwidth/config-schema.ts"], own: ["src/features/bandwidth/"] },
  "probe resistance": { sections: ["src/features/probe-resistance/config-schema.ts"], own: ["src/features/probe-resistance/"] },
  permissions: {
    sections: ["src/features/permissions/config-schema.ts", "src/features/permissions/config-resources.ts"],
    own: ["src/features/permissions/"],
  },
  http: { sections: ["src/features/http/config-schema.ts"], own: ["src/features/http/"] },
  udp: { sections: ["src/features/udp/config-schema.ts"], own: ["src/features/udp/"] },
};

/** What a section can reach, itself excluded. */
function reach(graph: ImportGraph, from: string): Set<string> {
  const seen = new Set<string>();
  const todo = [...(graph.get(from) ?? [])];
  while (todo.length > 0) {
    const m = todo.pop()!;
    if (seen.has(m)) continue;
    seen.add(m);
    todo.push(...(graph.get(m) ?? []));
  }
  return seen;
}

/** Every break of the rule in `graph`, one line each. */
function sectionProblems(graph: ImportGraph, features = FEATURES, rootSchema = ROOT_SCHEMA): string[] {
  const problems: string[] = [];
  for (const [feature, { sections, own }] of Object.entries(features)) {
    const allowed = [...SHARED, ...own];
    for (const section of sections) {
      const imports = graph.get(section);
      if (imports === undefined) {
        problems.push(`${section}: missing (${feature})`);
        continue;
      }
      for (const m of imports) if (!allowed.some((a) => m.startsWith(a))) problems.push(`${section} imports ${m} (${feature} may import ${allowed.join(", ")})`);
      if (reach(graph, section).has(rootSchema)) problems.push(`${section} reaches ${rootSchema}`);
    }
  }
  return problems;
}

describe("feature configuration sections", () => {
  test("import only src/config, src/core, src/net and their own feature, and never reach the root schema", () => {
    const graph = importGraphOf(root, "src");
    assert.ok(graph.size > 100, `only ${graph.size} modules read`);
    assert.deepEqual(sectionProblems(graph), []);
  });

  test("the root schema composes every feature's schema section", () => {
    const imports = importGraphOf(root, "src").get(ROOT_SCHEMA) ?? [];
    for (const { sections } of Object.values(FEATURES)) {
      for (const s of sections.filter((f) => f.endsWith("config-schema.ts"))) assert.ok(imports.includes(s), `${ROOT_SCHEMA} does not import ${s}`);
    }
  });

  test("a feature's gateway adapter takes its configuration types from its own section, not the root schema", () => {
    const graph = importGraphOf(root, "src");
    const own = Object.values(FEATURES).flatMap((f) => f.own.filter((d) => d.startsWith("src/features/")));
    assert.equal(own.length, Object.keys(FEATURES).length);
    const importers = [...graph].filter(([m, imports]) => own.some((d) => m.startsWith(d)) && imports.includes(ROOT_SCHEMA)).map(([m]) => m);
    assert.deepEqual(importers, []);
  });

  test("a section importing the root, the gateway or another feature is reported", () => {
    const features = {
      a: { sections: ["src/gateway/a/config-schema.ts"], own: ["src/a/", "src/gateway/a/"] },
      b: { sections: ["src/gateway/b/config-schema.ts"], own: ["src/b/", "src/gateway/b/"] },
      c: { sections: ["src/gateway/c/config-schema.ts"], own: ["src/gateway/c/"] },
    };
    const graph = importGraph(
      new Map([
        ["src/gateway/config/schema.ts", 'import "../a/config-schema.js";\nimport "../b/config-schema.js";\nimport "../c/config-schema.js";'],
        // a: its own files and the primitives only, but one of its own files leads back to the root.
        ["src/gateway/a/config-schema.ts", 'import "../../config/leaves.js";\nimport "../../a/rules.js";\nimport type { X } from "./types.js";'],
        ["src/gateway/a/types.ts", 'import type { Config } from "../config/schema.js";'],
        ["src/a/rules.ts", ""],
        ["src/config/leaves.ts", ""],
        // b: another feature and the gateway's context.
        ["src/gateway/b/config-schema.ts", 'import "../../a/rules.js";\nimport type { Ctx } from "../context.js";'],
        ["src/gateway/context.ts", ""],
      ]),
    );
    assert.deepEqual(sectionProblems(graph, features), [
      "src/gateway/a/config-schema.ts reaches src/gateway/config/schema.ts",
      "src/gateway/b/config-schema.ts imports src/a/rules.ts (b may import src/config/, src/core/, src/net/, src/b/, src/gateway/b/)",
      "src/gateway/b/config-schema.ts imports src/gateway/context.ts (b may import src/config/, src/core/, src/net/, src/b/, src/gateway/b/)",
      "src/gateway/c/config-schema.ts: missing (c)",
    ]);
  });
});
