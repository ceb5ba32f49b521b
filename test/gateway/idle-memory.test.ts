/**
 * Memory budget of an idle gateway (docs/memory.md): a real `portcullis run`
 * with one connect listener, run as installed (the built dist/, no TypeScript
 * loader), stays under IDLE_RSS_BOUND_MB of resident memory once started.
 * RSS is a size, not a rate: a loaded machine makes startup slower, not
 * the process bigger. And the modules a one-listener gateway loads never
 * include what only other configurations use.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import assert from "node:assert/strict";
import { CLI } from "../helpers/cli.js";
import { withTimeout } from "./fixtures.js";
import { sleep } from "../helpers/wait.js";

/**
 * The documented bound (docs/memory.md), in MiB, for every Node version, on
 * top of what a bare `node` of that version takes beyond BARE_NODE_MB.
 */
const IDLE_RSS_BOUND_MB = 70;
/**
 * Node itself grows between major versions: the bound moves up by however
 * much more than this a bare `node` of the running version takes (measured
 * beside the gateway), so the test holds the gateway's own share, not Node's.
 */
const BARE_NODE_MB = 42;

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) / 1024;
}

/** Samples `pid` every 250 ms until two seconds of samples differ by at most 1 MiB (or `maxMs` passed); the largest of them. */
async function settledRss(pid: number, maxMs: number): Promise<number> {
  const window: number[] = [];
  const until = Date.now() + maxMs;
  for (;;) {
    window.push(rssMiB(pid));
    if (window.length > 8) window.shift();
    const settled = window.length === 8 && Math.max(...window) - Math.min(...window) <= 1;
    if (settled || Date.now() > until) return Math.max(...window);
    await sleep(250);
  }
}

/** RSS of a bare `node` (no code loaded) of the version running the tests, once it idles. */
async function bareNodeRss(): Promise<number> {
  const child = spawn(process.execPath, ["-e", "process.stdout.write('up'); setInterval(() => {}, 1e6)"], { stdio: ["ignore", "pipe", "ignore"] });
  try {
    await withTimeout(new Promise((r) => child.stdout.once("data", r)), 60_000, "bare node up");
    return await settledRss(child.pid!, 20_000);
  } finally {
    child.kill("SIGKILL");
  }
}

test(`an idle one-listener gateway (portcullis run, as installed) stays under ${IDLE_RSS_BOUND_MB} MiB RSS (Node ${process.versions.node.split(".")[0]})`, { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-idle-"));
  const file = join(dir, "gateway.toml");
  writeFileSync(file, ['[[listener]]', 'name = "egress"', 'kind = "connect"', 'bind = "127.0.0.1:0"', ""].join("\n"));
  const child = spawn(process.execPath, [CLI, "run", "-c", file], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  try {
    await withTimeout(
      (async () => {
        while (!/listener egress \(connect\) up/.test(stderr)) {
          if (child.exitCode !== null) throw new Error(`gateway exited: ${stderr}`);
          await sleep(50);
        }
      })(),
      60_000,
      "listener up",
    );
    // Startup leaves garbage that V8 gives back within a second or two (longer on a loaded machine):
    // settled is when two seconds of samples differ by at most 1 MiB; the largest of them is compared.
    const rss = await settledRss(child.pid!, 45_000);
    const bare = await bareNodeRss();
    const bound = IDLE_RSS_BOUND_MB + Math.max(0, bare - BARE_NODE_MB);
    t.diagnostic(`idle RSS ${rss.toFixed(1)} MiB (bound ${bound.toFixed(1)}; bare node ${bare.toFixed(1)} MiB, ${process.version})`);
    assert.ok(bare > 20, `a bare node was measured: ${bare.toFixed(1)} MiB`);
    assert.ok(rss <= bound, `idle RSS ${rss.toFixed(1)} MiB > ${bound.toFixed(1)} MiB`);
  } finally {
    child.kill("SIGTERM");
    await withTimeout(exited, 15_000, "exit").catch(() => child.kill("SIGKILL"));
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Packages (and node: built-ins) reached from `entry` through static imports (type-only imports and dynamic import() are not followed). */
function staticPackages(entry: string): Set<string> {
  const seen = new Set<string>();
  const pkgs = new Set<string>();
  const queue = [resolve(entry)];
  while (queue.length > 0) {
    const f = queue.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    const src = readFileSync(f, "utf8");
    for (const m of src.matchAll(/^(?:import|export)\s(?!type\s)[^;]*?\sfrom\s+"([^"]+)"|^import\s+"([^"]+)"/gms)) {
      const spec = (m[1] ?? m[2])!;
      if (spec.startsWith("node:")) {
        pkgs.add(spec);
        continue;
      }
      if (spec.startsWith(".")) queue.push(resolve(dirname(f), spec).replace(/\.js$/, ".ts"));
      else pkgs.add(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!);
    }
  }
  return pkgs;
}

test("portcullis run, the configuration and the gateway import no PostgreSQL, Redis, HTTP client, X.509 parser, metrics library or TLS up front", () => {
  // What each entry surely loads, so a walk that found nothing cannot pass.
  const sure: Record<string, string> = { "src/cli/commands/run.ts": "", "src/gateway/config/load.ts": "zod", "src/gateway/gateway.ts": "pino" };
  for (const [entry, must] of Object.entries(sure)) {
    const reached = staticPackages(entry);
    if (must !== "") assert.ok(reached.has(must), `${entry}: the walk finds ${must}`);
    // node:tls costs an idle Node 24 process about 4 MiB: a gateway without a TLS listener must not load it.
    for (const heavy of ["pg", "ioredis", "undici", "prom-client", "@peculiar/asn1-x509", "@peculiar/asn1-schema", "node:tls"]) {
      assert.equal(reached.has(heavy), false, `${entry} loads ${heavy} statically`);
    }
  }
});
