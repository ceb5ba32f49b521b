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
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
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

test("the tarball carries the license and no source maps (src/ is not shipped); engines name the supported Node lines", () => {
  assert.ok(packed.includes("LICENSE"), "LICENSE is not in the tarball");
  assert.match(readFileSync(join(app, "node_modules/portcullis/LICENSE"), "utf8"), /Apache License\s+Version 2\.0, January 2004/);
  assert.deepEqual(packed.filter((f) => f.endsWith(".map")), [], "source maps would point at src/, which is not shipped");
  const pkg = JSON.parse(readFileSync(join(app, "node_modules/portcullis/package.json"), "utf8")) as { license: string; engines: { node: string } };
  assert.equal(pkg.license, "Apache-2.0");
  assert.equal(pkg.engines.node, "^20.0.0 || ^22.0.0 || ^24.0.0");
});

const OPTIONAL_PEERS = ["pg", "ioredis", "@types/pg", "fastify"];

/** Runs the installed bin; resolves with its exit code and output (it may fail). */
function bin(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile("npx", ["--no", "portcullis", ...args], { cwd: app, env, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

test("pg, ioredis, their types and fastify are optional peers: declared, and not installed with the package", () => {
  const pkg = JSON.parse(readFileSync(join(app, "node_modules/portcullis/package.json"), "utf8")) as {
    dependencies: Record<string, string>;
    peerDependencies: Record<string, string>;
    peerDependenciesMeta: Record<string, { optional?: boolean }>;
  };
  for (const p of OPTIONAL_PEERS) {
    assert.ok(pkg.peerDependencies[p], `${p} is not a peer dependency`);
    assert.equal(pkg.peerDependenciesMeta[p]?.optional, true, `${p} is not optional`);
    assert.equal(pkg.dependencies[p], undefined, `${p} is still a dependency`);
    assert.equal(existsSync(join(app, "node_modules", p)), false, `${p} was installed with the package`);
  }
});

test("without the optional peers: the gateway runs on memory, and a config that needs one names the package to install in one line", async () => {
  writeFileSync(join(app, "memory.toml"), '[[listener]]\nname = "fwd"\nkind = "tcp"\nbind = "127.0.0.1:0"\nupstream = "127.0.0.1:9"\n');
  const ok = await bin(["check-config", "-c", "memory.toml"]);
  assert.equal(ok.code, 0, ok.stderr);
  const help = await bin(["help"]);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /permit/);
  writeFileSync(join(app, "redis.toml"), '[store]\nkind = "redis"\nurl = "redis://127.0.0.1:6379"\n\n[[listener]]\nname = "fwd"\nkind = "tcp"\nbind = "127.0.0.1:0"\nupstream = "127.0.0.1:9"\n');
  const redis = await bin(["run", "-c", "redis.toml"]);
  assert.equal(redis.code, 1);
  const redisLines = redis.stderr.trim().split("\n");
  assert.equal(redisLines.length, 1, redis.stderr);
  assert.match(redisLines[0]!, /\[store\] kind = "redis" needs the "ioredis" package, which is not installed: npm install ioredis/);
  const db = await bin(["db", "migrate", "--url", "postgres://127.0.0.1:1/none"]);
  assert.equal(db.code, 1);
  const dbLines = db.stderr.trim().split("\n");
  assert.equal(dbLines.length, 1, db.stderr);
  assert.match(dbLines[0]!, /needs the "pg" package, which is not installed: npm install pg/);
  assert.ok(!/\n\s+at /.test(redis.stderr + db.stderr), "no stack trace");
});

test("without the optional peers, a strict project importing the root entry type-checks with skipLibCheck false", async () => {
  const dir2 = join(app, "root-only");
  mkdirSync(dir2, { recursive: true });
  writeFileSync(
    join(dir2, "tsconfig.json"),
    JSON.stringify({ compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, skipLibCheck: false, noEmit: true, types: [] }, files: ["use.ts"] }),
  );
  writeFileSync(join(dir2, "use.ts"), 'import * as lib from "portcullis";\nexport const l = lib.createLimiter({ name: "t", algorithm: "gcra", rate: 1, burst: 1 });\n');
  writeFileSync(join(dir2, "package.json"), JSON.stringify({ name: "root-only", private: true, type: "module" }));
  const tsc = join(root, "node_modules/typescript/bin/tsc");
  const r = await new Promise<{ code: number; out: string }>((resolve) =>
    execFile(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: dir2, env, timeout: 120_000 }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, out: stdout + stderr })),
  );
  assert.equal(r.code, 0, `the root types reach a package the user may not have:\n${r.out.slice(0, 4000)}`);
});

test("the shipped types import only dependencies and peers, never a package that is only a devDependency", () => {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { dependencies: Record<string, string>; peerDependencies: Record<string, string> };
  // The package's own name (its doc comments show `import ... from "portcullis"`) resolves to itself.
  const allowed = new Set(["portcullis", ...Object.keys(pkg.dependencies), ...Object.keys(pkg.peerDependencies)]);
  const bad: string[] = [];
  for (const f of packed.filter((p) => p.endsWith(".d.ts"))) {
    const text = readFileSync(join(app, "node_modules/portcullis", f), "utf8");
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*["']([^"'.][^"']*)["']/g)) {
      const spec = m[1]!;
      if (spec.startsWith("node:")) continue;
      const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!;
      // A package's types come from it or from its @types/ package.
      const typesName = name.startsWith("@") ? `@types/${name.slice(1).replace("/", "__")}` : `@types/${name}`;
      if (!allowed.has(name) && !allowed.has(typesName)) bad.push(`${f}: ${spec}`);
    }
  }
  assert.deepEqual(bad, []);
});

/** Links the optional peers into the app, as a user of the Redis, permissions and Fastify subpaths has them installed. */
function installPeers(): void {
  for (const p of OPTIONAL_PEERS) {
    const to = join(app, "node_modules", p);
    if (existsSync(to)) continue;
    mkdirSync(join(to, ".."), { recursive: true });
    symlinkSync(join(root, "node_modules", p), to, "dir");
  }
}

/** Every subpath the package exports ("." as "portcullis", "./redis" as "portcullis/redis", ...). */
function subpaths(): string[] {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { exports: Record<string, unknown> };
  return Object.keys(pkg.exports).map((k) => (k === "." ? "portcullis" : `portcullis/${k.slice(2)}`));
}

test("every subpath export imports from an .mjs file, and exports something", async () => {
  installPeers();
  const names = subpaths();
  assert.ok(names.length >= 9, names.join(", "));
  const lines = names.map((n, i) => `import * as m${i} from ${JSON.stringify(n)};`);
  lines.push(`console.log(JSON.stringify([${names.map((_, i) => `Object.keys(m${i}).length`).join(", ")}]));`);
  writeFileSync(join(app, "imports.mjs"), `${lines.join("\n")}\n`);
  const counts = JSON.parse(await run(process.execPath, ["imports.mjs"], app, 60_000)) as number[];
  counts.forEach((n, i) => assert.ok(n > 0, `${names[i]} exports nothing`));
});

test("a strict TypeScript project using every subpath, and the README's snippet, type-checks with skipLibCheck false", async () => {
  // The project's own @types/node (a user has theirs); nothing else of the checkout is visible to the compiler.
  mkdirSync(join(app, "node_modules/@types"), { recursive: true });
  if (!existsSync(join(app, "node_modules/@types/node"))) symlinkSync(join(root, "node_modules/@types/node"), join(app, "node_modules/@types/node"), "dir");
  // The Fastify adapter's, the permissions' and the Redis store's types name their peers', as their users have them installed.
  installPeers();
  writeFileSync(
    join(app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, skipLibCheck: false, noEmit: true, types: ["node"] },
      files: ["use.ts"],
    }),
  );
  const names = subpaths();
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const snippet = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(snippet, "the README has a TypeScript snippet");
  const imports = snippet.split("\n").filter((l) => l.startsWith("import "));
  const body = snippet.split("\n").filter((l) => !l.startsWith("import "));
  writeFileSync(
    join(app, "use.ts"),
    [
      ...imports,
      ...names.map((n, i) => `import * as m${i} from ${JSON.stringify(n)};`),
      'import type { ServerResponse } from "node:http";',
      "export const modules: object[] = [" + names.map((_, i) => `m${i}`).join(", ") + "];",
      // What the README's snippet takes as given.
      "declare const ip: string;",
      "declare const user: string;",
      "declare const res: ServerResponse;",
      "export function readme(): void {",
      ...body.map((l) => `  ${l}`),
      "}",
      "",
    ].join("\n"),
  );
  const tsc = join(root, "node_modules/typescript/bin/tsc");
  // tsc writes its diagnostics to stdout.
  const r = await new Promise<{ code: number; out: string }>((resolve) =>
    execFile(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: app, env, timeout: 120_000 }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, out: stdout + stderr })),
  );
  assert.equal(r.code, 0, `the installed package does not type-check in a strict project:\n${r.out.slice(0, 4000)}`);
});

test('import("portcullis") is the library; the gateway and Redis are subpaths', async () => {
  installPeers();
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

test("the old subpath names portcullis/shaping and portcullis/probe are aliases of portcullis/bandwidth and portcullis/probe-resistance", async () => {
  installPeers();
  writeFileSync(
    join(app, "aliases.mjs"),
    [
      'import * as shaping from "portcullis/shaping";',
      'import * as bandwidth from "portcullis/bandwidth";',
      'import * as probe from "portcullis/probe";',
      'import * as probeResistance from "portcullis/probe-resistance";',
      "const same = (a, b) => Object.keys(a).length > 0 && Object.keys(a).every((k) => a[k] === b[k]) && Object.keys(a).length === Object.keys(b).length;",
      "console.log(JSON.stringify([same(shaping, bandwidth), same(probe, probeResistance)]));",
      "",
    ].join("\n"),
  );
  assert.deepEqual(JSON.parse(await run(process.execPath, ["aliases.mjs"], app, 60_000)), [true, true]);
});
