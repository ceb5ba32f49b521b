/**
 * `import "portcullis"` is the library: it loads the engine and the memory
 * store, and none of the gateway's dependencies. Each case starts a fresh
 * Node on the built entry (dist/, which the test runner builds first) and
 * records every module Node resolves while importing it.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

const root = new URL("../..", import.meta.url).pathname;
const RECORDER = join(root, "test/packaging/record-loads.mjs");

/** The gateway's packages: the root entry must load none of them. */
const GATEWAY_PACKAGES = ["pg", "ioredis", "pino", "prom-client", "undici", "yaml", "zod", "smol-toml", "@peculiar/asn1-x509", "asn1js"];

interface Loaded {
  packages: string[];
  modules: string[];
}

/** What importing `entry` (a path in the repository) resolves, in a fresh process. */
function loadsOf(entry: string): Promise<Loaded> {
  const code = `await import(${JSON.stringify(pathToFileURL(join(root, entry)).href)});`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["--import", RECORDER, "--input-type=module", "-e", code], { cwd: root, timeout: 30_000 }, (err, _stdout, stderr) => {
      if (err) return reject(new Error(`importing ${entry} failed: ${stderr.slice(0, 2000)}`));
      const urls = [...stderr.matchAll(/^loaded (\S+)$/gm)].map((m) => m[1]!);
      const packages = new Set<string>();
      const modules = new Set<string>();
      for (const url of urls) {
        const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
        if (pkg) packages.add(pkg[1]!);
        else if (url.startsWith(pathToFileURL(root).href)) modules.add(url.slice(pathToFileURL(root).href.length));
      }
      resolve({ packages: [...packages].sort(), modules: [...modules].sort() });
    });
  });
}

test("the root entry loads the engine and the memory store, and no package of the gateway", async () => {
  const { packages, modules } = await loadsOf("dist/index.js");
  // The recorder saw the engine (else an empty list would prove nothing).
  for (const m of ["dist/limiter/rate-limiter.js", "dist/stores/memory-store.js", "dist/algorithms/gcra.js", "dist/core/clock.js"]) {
    assert.ok(modules.includes(m), `${m} not among the loaded modules: ${modules.join(", ")}`);
  }
  assert.deepEqual(packages.filter((p) => GATEWAY_PACKAGES.includes(p)), [], `the root entry loads ${packages.join(", ")}`);
  // Today it loads no package at all; a new one is a decision to make on purpose.
  assert.deepEqual(packages, []);
  const beyondEngine = modules.filter((m) => !/^dist\/(index|(core|algorithms|limiter|net)\/.+|stores\/(?!redis\/).+)\.js$/.test(m));
  assert.deepEqual(beyondEngine, [], "the root entry loads modules above the engine");
});

test("the gateway entry does load the gateway's packages (the recorder sees packages)", async () => {
  const { packages, modules } = await loadsOf("dist/gateway/index.js");
  for (const p of ["pino", "prom-client", "zod", "yaml"]) assert.ok(packages.includes(p), `${p} not among ${packages.join(", ")}`);
  assert.ok(modules.includes("dist/gateway/gateway.js"));
});
