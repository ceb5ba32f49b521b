/**
 * Each feature (its library folder and its gateway adapter folder) imports
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
const FEATURE_FOLDERS: ReadonlyArray<readonly [string, string]> = [
  ["src/shaping/", "bandwidth"],
  ["src/gateway/bandwidth/", "bandwidth"],
  ["src/probe/", "probe-resistance"],
  ["src/gateway/masking/", "probe-resistance"],
  ["src/permissions/", "permissions"],
  ["src/gateway/permissions/", "permissions"],
  ["src/gateway/policy/", "permissions"],
  ["src/http/", "http"],
  ["src/gateway/http/", "http"],
  ["src/udp/", "udp"],
  ["src/gateway/udp/", "udp"],
];

/** Folders no feature may import. */
const FORBIDDEN = ["src/metrics/", "src/admin/", "src/cli/"];

/** Files allowed to break the rule (none: add one only with the import it keeps and why). */
const EXEMPT = new Set<string>([]);

function featureOf(file: string): { folder: string; feature: string } | undefined {
  // Longest prefix first: src/gateway/http/ before a shorter match.
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
  if (target.startsWith("src/gateway/")) return "imports the gateway outside its own adapter folder";
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
      ["src/gateway/http/front.ts", 'import type { GatewayContext } from "../context.js";\nimport "./opts.js";'],
      ["src/gateway/http/opts.ts", 'import { ByteBucket } from "../../shaping/byte-bucket.js";'],
      ["src/gateway/context.ts", ""],
      ["src/gateway/http/config-schema.ts", ""],
      ["src/http/lib.ts", 'import "../gateway/http/config-schema.js";\nimport "../metrics/m.js";'],
      ["src/shaping/byte-bucket.ts", 'import "../core/clock.js";'],
      ["src/udp/relay.ts", 'import "../algorithms/b.js";\nimport "../limiter/l.js";\nimport("../cli/c.js");'],
      ["src/core/clock.ts", ""],
      ["src/algorithms/b.ts", ""],
      ["src/limiter/l.ts", ""],
      ["src/metrics/m.ts", ""],
      ["src/cli/c.ts", ""],
      ["src/gateway/masking/ipt-stage.ts", 'import "../context.js";'],
    ]),
  );
  assert.deepEqual(violations(graph), [
    "src/gateway/http/front.ts -> src/gateway/context.ts (imports the gateway outside its own adapter folder)",
    "src/gateway/http/opts.ts -> src/shaping/byte-bucket.ts (imports feature bandwidth)",
    "src/gateway/masking/ipt-stage.ts -> src/gateway/context.ts (imports the gateway outside its own adapter folder)",
    "src/http/lib.ts -> src/metrics/m.ts (imports metrics)",
    "src/udp/relay.ts -> src/cli/c.ts (imports cli)",
  ]);
});
