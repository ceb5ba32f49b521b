/**
 * The published package works on its own: `npm pack` the checkout, install
 * the tarball into an empty project, and run what a user runs: the
 * `portcullis` bin (the compiled CLI, no tsx) and `import("portcullis")` and
 * its subpaths. Packs the dist/ the test runner built (scripts are skipped
 * here: `prepack`'s clean build is `node scripts/build.mjs --clean`, the same
 * compiler run). Dependencies come from npm's cache when it has them.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

const root = new URL("../..", import.meta.url).pathname;
const version = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;

// The runner is itself started by npm: its npm_* settings must not steer the npm commands below.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith("npm_")));

function run(cmd: string, args: string[], cwd: string, timeout = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env, timeout, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")} failed (${err.message.split("\n")[0]}):\n${stderr.slice(-3000)}`));
      else resolve(stdout);
    });
  });
}

let dir: string;
let app: string;
let packed: string[];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-pack-"));
  const out = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], root);
  const [info] = JSON.parse(out) as Array<{ filename: string; files: Array<{ path: string }> }>;
  assert.ok(info);
  packed = info.files.map((f) => f.path);
  app = join(dir, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", join(dir, info.filename)], app, 300_000);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the tarball holds the compiled package, not the sources or build leftovers", () => {
  for (const f of ["package.json", "bin/portcullis.js", "dist/index.js", "dist/index.d.ts", "dist/gateway/index.js", "dist/cli/main.js", "dist/admin/assets/index.html", "examples/portcullis.toml"]) {
    assert.ok(packed.includes(f), `${f} is not in the tarball`);
  }
  assert.deepEqual(packed.filter((f) => f.startsWith("src/") || f.startsWith("test/") || f.endsWith(".tsbuildinfo") || f === "dist/.built"), []);
});

test("npx portcullis version runs the compiled CLI, and tsx is not installed with it", async () => {
  const out = await run("npx", ["--no", "portcullis", "version"], app, 30_000);
  assert.equal(out.trim(), `portcullis ${version} (node ${process.version})`);
  assert.equal(existsSync(join(app, "node_modules/tsx")), false, "tsx came with the package: it must be a devDependency");
});

test('import("portcullis") is the library; the gateway and Redis are subpaths', async () => {
  const code = [
    'const lib = await import("portcullis");',
    'const gw = await import("portcullis/gateway");',
    'const redis = await import("portcullis/redis");',
    'const http = await import("portcullis/http");',
    "const l = lib.createLimiter({ name: \"t\", algorithm: \"gcra\", rate: 1, burst: 1 });",
    "console.log(JSON.stringify({ first: l.check(\"k\").allowed, second: l.check(\"k\").allowed, rootGateway: typeof lib.Gateway, gateway: typeof gw.Gateway, load: typeof gw.loadConfigFile, redis: typeof redis.RedisStore, http: typeof http.HttpLimiter }));",
  ].join("\n");
  const out = await run(process.execPath, ["--input-type=module", "-e", code], app, 30_000);
  assert.deepEqual(JSON.parse(out), { first: true, second: false, rootGateway: "undefined", gateway: "function", load: "function", redis: "function", http: "function" });
});
