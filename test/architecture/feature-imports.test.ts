/**
 * Each feature folder (src/features/<name>: library, gateway adapter, config section) imports
 * only the engine and the primitives: src/core, src/net, src/config,
 * src/algorithms, src/limiter, src/stores and its own files. Never the
 * gateway's internals, another feature, src/metrics, src/admin or src/cli.
 * Where an adapter needs a gateway object it declares a structural interface
 * of what it uses, so the feature folders can be moved and linted apart.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { importGraph, importGraphOf } from "./import-graph.js";

const root = new URL("../..", import.meta.url).pathname;

/** Folder (relative to the root, with a trailing slash) -> the feature it belongs to. */
const FEATURE_FOLDERS: ReadonlyArray<readonly [string, string]> = ["bandwidth", "probe-resistance", "permissions", "http", "udp"].map(
  (f) => [`src/features/${f}/`, f] as const,
);

/** Folders no feature may import. */
const FORBIDDEN = ["src/metrics/", "src/admin/", "src/cli/"];

/** Files allowed to break the rule (none: add one only with the import it keeps and why). */
const EXEMPT = new Set<string>([]);

function featureOf(file: string): { folder: string; feature: string } | undefined {
  // Longest prefix first: src/features/http/ before a shorter match.
  let best: { folder: string; feature: string } | undefined;
  for (const [folder, feature] of FEATURE_FOLDERS) {
    if (file.startsWith(folder) && (!best || folder.length > best.folder.length)) best = { folder, feature };
  }
  return best;
}

/** The reasons `file`'s import of `target` breaks the rule (empty when it is allowed). */
function violation(file: string, target: string): string | undefined {
  const own = featureOf(file);
  if (!own) return undefined;
  const other = featureOf(target);
  if (other) return other.feature === own.feature ? undefined : `imports feature ${other.feature}`;
  if (target.startsWith("src/gateway/")) return "imports the gateway";
  if (FORBIDDEN.some((f) => target.startsWith(f))) return `imports ${target.split("/")[1]}`;
  return undefined;
}

function violations(graph: Map<string, string[]>): string[] {
  const out: string[] = [];
  for (const [file, targets] of graph) {
    if (EXEMPT.has(file)) continue;
    for (const target of targets) {
      const why = violation(file, target);
      if (why) out.push(`${file} -> ${target} (${why})`);
    }
  }
  return out.sort();
}

test("feature folders import only the engine, the primitives and their own feature", () => {
  const graph = importGraphOf(root, "src");
  const features = [...graph.keys()].filter((f) => featureOf(f));
  // The reader sees every feature folder (a typo in a folder name would check nothing).
  for (const [folder] of FEATURE_FOLDERS) {
    assert.ok(
      features.some((f) => f.startsWith(folder)),
      `no file read under ${folder}`,
    );
  }
  // An exemption names a file that is there (a moved or renamed file must not keep a dead entry).
  for (const file of EXEMPT) assert.ok(graph.has(file), `exempt file ${file} not found`);
  assert.deepEqual(violations(graph), [], "declare a structural interface in the feature instead of importing");
});

test("the rule catches the gateway, another feature and the outer layers, and allows the engine", () => {
  const graph = importGraph(
    new Map([
      ["src/features/http/front.ts", 'import type { GatewayContext } from "../../gateway/context.js";\nimport "./opts.js";'],
      ["src/features/http/opts.ts", 'import { ByteBucket } from "../bandwidth/byte-bucket.js";'],
      ["src/gateway/context.ts", ""],
      ["src/features/http/config-schema.ts", ""],
      ["src/features/http/lib.ts", 'import "./config-schema.js";\nimport "../../metrics/m.js";'],
      ["src/features/bandwidth/byte-bucket.ts", 'import "../../core/clock.js";'],
      ["src/features/udp/relay.ts", 'import "../../algorithms/b.js";\nimport "../../limiter/l.js";\nimport("../../cli/c.js");'],
      ["src/core/clock.ts", ""],
      ["src/algorithms/b.ts", ""],
      ["src/limiter/l.ts", ""],
      ["src/metrics/m.ts", ""],
      ["src/cli/c.ts", ""],
      ["src/features/probe-resistance/ipt-stage.ts", 'import "../../gateway/context.js";'],
    ]),
  );
  assert.deepEqual(violations(graph), [
    "src/features/http/front.ts -> src/gateway/context.ts (imports the gateway)",
    "src/features/http/lib.ts -> src/metrics/m.ts (imports metrics)",
    "src/features/http/opts.ts -> src/features/bandwidth/byte-bucket.ts (imports feature bandwidth)",
    "src/features/probe-resistance/ipt-stage.ts -> src/gateway/context.ts (imports the gateway)",
    "src/features/udp/relay.ts -> src/cli/c.ts (imports cli)",
  ]);
});
