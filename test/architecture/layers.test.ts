/**
 * The layer rule of eslint.config.js (import-x/no-restricted-paths, one block
 * per layer; docs/architecture.md, "Layers") fires on an import that points
 * up or sideways, type-only ones included, and stays quiet on one that points
 * down. Each case lints a snippet as if it were a new file at that path, with
 * the repository's own configuration.
 */
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { readdirSync } from "node:fs";
import { ESLint } from "eslint";

const root = new URL("../..", import.meta.url).pathname;
const RULE = "import-x/no-restricted-paths";

let eslint: ESLint;
before(() => {
  eslint = new ESLint({ cwd: root });
});

async function layerErrors(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${root}${filePath}` });
  assert.ok(result, `no lint result for ${filePath}`);
  const fatal = result.messages.filter((m) => m.fatal);
  assert.deepEqual(fatal, [], `${filePath} did not parse`);
  return result.messages.filter((m) => m.ruleId === RULE).map((m) => m.message);
}

describe("an upward or sideways import fails lint", () => {
  const refused: Array<[string, string, string]> = [
    // [file, code, what the message names]
    ["src/stores/new-store.ts", 'import { Decision } from "../limiter/decision.js";\nexport const d = Decision;', "stores may import only algorithms, core"],
    ["src/stores/redis/new-script.ts", 'import type { RateLimiter } from "../../limiter/rate-limiter.js";\nexport type R = RateLimiter;', "stores may import only"],
    ["src/algorithms/new-transition.ts", 'import { normalizeIp } from "../net/ip-key.js";\nexport const n = normalizeIp;', "algorithms may import only core"],
    ["src/core/new-seam.ts", 'import type { Outcome } from "../algorithms/outcome.js";\nexport type O = Outcome;', "core may import only nothing else"],
    ["src/limiter/new-limiter.ts", 'import type { Gateway } from "../gateway/gateway.js";\nexport type G = Gateway;', "limiter may import only"],
    ["src/config/new-leaf.ts", 'import { configSchema } from "../gateway/config/schema.js";\nexport const s = configSchema;', "config may import only core"],
    ["src/net/new-address.ts", 'import { MemoryStore } from "../stores/memory-store.js";\nexport const m = MemoryStore;', "net may import only core"],
    // A feature imports neither another feature nor the gateway (it declares the shape it needs).
    ["src/features/http/new-middleware.ts", 'import { peekClientHello } from "../probe-resistance/peek.js";\nexport const p = peekClientHello;', "features/http may import only"],
    ["src/features/bandwidth/new-shaper.ts", 'import type { Gateway } from "../../gateway/gateway.js";\nexport type G = Gateway;', "features/bandwidth may import only"],
    ["src/features/udp/new-listener.ts", 'import type { GatewayContext } from "../../gateway/context.js";\nexport type C = GatewayContext;', "features/udp may import only"],
    ["src/features/permissions/new-slot.ts", 'import { Listener } from "../../gateway/listener.js";\nexport const l = Listener;', "features/permissions may import only"],
    ["src/features/probe-resistance/new-stage.ts", 'import type { ByteGate } from "../bandwidth/gate.js";\nexport type B = ByteGate;', "features/probe-resistance may import only"],
    ["src/gateway/new-part.ts", 'import type { GatewayMetrics } from "../metrics/gateway-metrics.js";\nexport type M = GatewayMetrics;', "gateway may import only"],
    ["src/features/http/new-part.ts", 'import { attachObservability } from "../../admin/observability.js";\nexport const a = attachObservability;', "features/http may import only"],
    ["src/metrics/new-metric.ts", 'import type { AdminServer } from "../admin/admin-server.js";\nexport type A = AdminServer;', "metrics may import only"],
    ["src/admin/new-route.ts", 'import { cli } from "../cli/main.js";\nexport const c = cli;', "admin may import only"],
    // Entry modules compose layers; nothing in src/ imports one.
    ["src/cli/new-command.ts", 'import { createLimiter } from "../index.js";\nexport const c = createLimiter;', "cli may import only"],
    // The library's root entry stays the engine and the memory store.
    ["src/index.ts", 'export { RedisStore } from "./stores/redis/redis-store.js";', "src/index.ts may import only"],
    ["src/index.ts", 'export { Gateway } from "./gateway/gateway.js";', "src/index.ts may import only"],
    ["src/index.ts", 'export { HttpLimiter } from "./features/http/http-limiter.js";', "src/index.ts may import only"],
  ];
  for (const [file, code, named] of refused) {
    test(`${file}: ${code.split("\n")[0]}`, async () => {
      const errors = await layerErrors(file, code);
      assert.equal(errors.length, 1, `expected one layer error, got ${JSON.stringify(errors)}`);
      assert.match(errors[0]!, new RegExp(named.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
      assert.match(errors[0]!, /docs\/architecture\.md/);
    });
  }
});

describe("a downward import passes", () => {
  const allowed: Array<[string, string]> = [
    ["src/algorithms/new-transition.ts", 'import { InvalidArgumentError } from "../core/errors.js";\nexport const e = InvalidArgumentError;'],
    ["src/stores/new-store.ts", 'import { Outcome } from "../algorithms/outcome.js";\nimport { systemClock } from "../core/clock.js";\nexport const o = [Outcome, systemClock];'],
    ["src/limiter/new-limiter.ts", 'import { MemoryStore } from "../stores/memory-store.js";\nimport { gcra } from "../algorithms/gcra.js";\nexport const x = [MemoryStore, gcra];'],
    ["src/features/udp/new-relay.ts", 'import { ByteBucket } from "../../algorithms/byte-bucket.js";\nimport { MemoryStore } from "../../stores/memory-store.js";\nimport { normalizeIp } from "../../net/ip-key.js";\nexport const x = [ByteBucket, MemoryStore, normalizeIp];'],
    ["src/features/http/new-middleware.ts", 'import { parseDuration } from "../../config/duration.js";\nimport { createLimiter } from "../../limiter/create-limiter.js";\nexport const x = [parseDuration, createLimiter];'],
    ["src/features/bandwidth/new-stage.ts", 'import * as gate from "./gate.js";\nexport const g = gate;'],
    ["src/gateway/new-part.ts", 'import { HttpLimiter } from "../features/http/http-limiter.js";\nimport { parseDuration } from "../config/duration.js";\nexport const x = [HttpLimiter, parseDuration];'],
    ["src/metrics/new-metric.ts", 'import type { GatewayEvents } from "../gateway/events.js";\nexport type E = GatewayEvents;'],
    ["src/admin/new-route.ts", 'import { GatewayMetrics } from "../metrics/gateway-metrics.js";\nexport const m = GatewayMetrics;'],
    ["src/cli/new-command.ts", 'import { Gateway } from "../gateway/gateway.js";\nimport { attachObservability } from "../admin/observability.js";\nexport const x = [Gateway, attachObservability];'],
    ["src/gateway/index.ts", 'export { attachObservability } from "../admin/observability.js";\nexport { Gateway } from "./gateway.js";'],
    ["src/index.ts", 'export { createLimiter } from "./limiter/create-limiter.js";\nexport { MemoryStore } from "./stores/memory-store.js";\nexport { ipKey } from "./net/ip-key.js";'],
  ];
  for (const [file, code] of allowed) {
    test(`${file}: ${code.split("\n")[0]}`, async () => {
      assert.deepEqual(await layerErrors(file, code), []);
    });
  }
});

test("every folder of src/ is a layer and every module at its top an entry (so none escapes the rule)", async () => {
  const { LAYERS, ENTRIES } = (await import(`${root}eslint.config.js`)) as { LAYERS: Record<string, string[]>; ENTRIES: Record<string, unknown> };
  const dirs = readdirSync(`${root}src`, { withFileTypes: true });
  const features = readdirSync(`${root}src/features`, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => `features/${d.name}`);
  const folders = [...dirs.filter((d) => d.isDirectory() && d.name !== "features").map((d) => d.name), ...features].sort();
  assert.ok(features.length >= 5, `features: ${features.join(", ")}`);
  assert.deepEqual(folders.filter((f) => !(f in LAYERS)), [], "add the folder to LAYERS in eslint.config.js and to docs/architecture.md");
  const topModules = dirs.filter((d) => d.isFile() && d.name.endsWith(".ts")).map((d) => `src/${d.name}`);
  assert.deepEqual(topModules.filter((f) => !(f in ENTRIES)), [], "add the entry to ENTRIES in eslint.config.js");
  assert.ok(Object.keys(LAYERS).length >= 12);
});
