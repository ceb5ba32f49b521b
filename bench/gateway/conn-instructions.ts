/**
 * Machine instructions per new connection, counted by valgrind's callgrind:
 * a plain Node `socket.pipe` relay against the Portcullis `tcp` listener with
 * the guard on, each relaying a fixed number of connections (connect, 1-byte
 * echo, close) to the same echo server. Unlike CPU seconds the count barely
 * moves with whatever else the machine is doing, so two versions of the
 * accept-to-close path compare within a few percent.
 *
 *   node --import tsx bench/gateway/conn-instructions.ts
 *
 * Each relay runs under callgrind (every thread counted). After WARMUP
 * connections (default 5,000: by then V8 has optimized what it will; after
 * 1,000 the gateway was still compiling, which took 45% of the count) its
 * counters are zeroed and it idles
 * for IDLE_SECONDS: the instructions of a process with no connections, per
 * second. Zeroed again, it relays CONNS connections (default 2,000),
 * CONCURRENCY at a time; the idle rate times that run's duration is
 * subtracted, and the rest divided by CONNS. Needs valgrind (apt-get install
 * -y valgrind). Not part of `npm run bench`: one run takes a few minutes.
 *
 * The gateway runs from one file that esbuild bundles from the source, as
 * tsx compiles it (names kept), so valgrind does not have to run tsx's
 * loader thread and its compiler through startup. BENCH_GATEWAY_ROOT names
 * another checkout to measure (to compare two versions).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { PIPE_RELAY, connections, echoServer, freePort, gatewayConfig, gatewayRoot, root, waitListening } from "./relays.js";

const CONNS = Number(process.env.CONNS ?? 2000);
const WARMUP = Number(process.env.WARMUP ?? 5000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 10);
const IDLE_SECONDS = Number(process.env.IDLE_SECONDS ?? 5);
/** Which relays to count (default both); the ratio is printed when both ran. */
const RELAYS = (process.env.RELAYS ?? "pipe,gateway").split(",");
/** Keep callgrind's dumps (for callgrind_annotate) in this directory instead of a temporary one. */
const KEEP = process.env.KEEP_DIR;

function callgrindControl(pid: number, flag: "-z" | "-d"): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile("callgrind_control", [flag, String(pid)], { timeout: 60_000 }, (err, stdout) =>
      err || !stdout.includes("OK") ? reject(new Error(`callgrind_control ${flag} ${pid} failed: ${err?.message ?? stdout}`)) : resolve(),
    ),
  );
}

/** The instruction total of callgrind's `n`th dump of `pid`. */
function dumpTotal(dir: string, pid: number, n: number): number {
  const file = readdirSync(dir).find((f) => f === `out.${pid}.${n}`);
  const m = file && /^totals: (\d+)/m.exec(readFileSync(path.join(dir, file), "utf8"));
  if (!m) throw new Error(`callgrind wrote no totals for dump ${n} of ${pid}`);
  return Number(m[1]);
}

/** `portcullis run` as one ES module beside node_modules (so its packages resolve), built as tsx builds each file. */
async function bundleGateway(): Promise<string> {
  // esbuild comes with tsx; it is not a dependency of its own.
  const esbuild = (await import("esbuild")) as typeof import("esbuild");
  const outfile = path.join(root, "node_modules", ".cache", "portcullis-bench", `gateway-${process.pid}.mjs`);
  // `portcullis run` itself: the CLI loads its commands by name, which a bundle cannot follow.
  const run = JSON.stringify(path.join(gatewayRoot, "src/cli/commands/run.ts"));
  await esbuild.build({
    stdin: { contents: `import { main } from ${run};\nprocess.exitCode = await main(process.argv.slice(2));\n`, resolveDir: root, loader: "ts" },
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    packages: "external",
    keepNames: true,
    logLevel: "error",
  });
  return outfile;
}

interface Count {
  perConn: number;
  idlePerSec: number;
  runSeconds: number;
}

async function measure(name: string, args: string[], port: number, dir: string): Promise<Count> {
  const vg: ChildProcess = spawn("valgrind", ["--tool=callgrind", `--callgrind-out-file=${dir}/out.%p`, process.execPath, ...args], { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
  const pid = vg.pid!;
  let stderr = "";
  vg.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const exited = new Promise<never>((_, reject) => vg.once("exit", (code) => reject(new Error(`${name} under callgrind exited (${code}): ${stderr}`))));
  exited.catch(() => undefined);
  try {
    await Promise.race([waitListening(port, 900_000), exited]);
    process.stderr.write(`  ${name}: up under callgrind, ${WARMUP} warm-up connections\n`);
    const warm = await connections(port, WARMUP, CONCURRENCY, 900_000, 120_000);
    if (warm.failed > 0) throw new Error(`${name}: ${warm.failed} warm-up connections failed`);
    await callgrindControl(pid, "-z");
    let t0 = performance.now();
    await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
    await callgrindControl(pid, "-d");
    const idlePerSec = dumpTotal(dir, pid, 1) / ((performance.now() - t0) / 1000);
    process.stderr.write(`  ${name}: ${CONNS} connections\n`);
    await callgrindControl(pid, "-z");
    t0 = performance.now();
    const r = await connections(port, CONNS, CONCURRENCY, 1_800_000, 120_000);
    const runSeconds = (performance.now() - t0) / 1000;
    await callgrindControl(pid, "-d");
    if (r.failed > 0 || r.done !== CONNS) throw new Error(`${name}: ${r.done} of ${CONNS} connections completed, ${r.failed} failed`);
    const total = dumpTotal(dir, pid, 2);
    return { perConn: (total - idlePerSec * runSeconds) / CONNS, idlePerSec, runSeconds };
  } finally {
    vg.kill("SIGKILL");
  }
}

const dir = KEEP ?? mkdtempSync(path.join(os.tmpdir(), "conn-instr-"));
const echo = await echoServer();
try {
  let pipe: Count | undefined;
  let gw: Count | undefined;
  if (RELAYS.includes("pipe")) {
    const port = await freePort();
    pipe = await measure("node pipe relay", ["--input-type=module", "-e", PIPE_RELAY, String(port), String(echo.port)], port, dir);
  }
  if (RELAYS.includes("gateway")) {
    const port = await freePort();
    const file = await gatewayConfig(dir, port, echo.port);
    const bundle = await bundleGateway();
    try {
      gw = await measure("portcullis tcp (guard on)", [bundle, "-c", file], port, dir);
    } finally {
      rmSync(bundle, { force: true });
    }
  }
  const row = (n: string, c: Count): string =>
    `| ${n} | ${Math.round(c.perConn).toLocaleString("en")} | ${Math.round(c.idlePerSec).toLocaleString("en")} | ${c.runSeconds.toFixed(1)} s |`;
  console.log(`instructions per connection under callgrind (connect, 1-byte echo, close; ${CONNS} connections, ${CONCURRENCY} at a time, after ${WARMUP} warm-up; idle rate subtracted)`);
  console.log(`| path | instructions / conn | idle instructions / s | run |`);
  console.log(`|---|---|---|---|`);
  if (pipe) console.log(row("node pipe relay", pipe));
  if (gw) console.log(row("portcullis tcp (guard on)", gw));
  if (pipe && gw) console.log(`gateway (guard on) / node pipe: ${(gw.perConn / pipe.perConn).toFixed(2)}x instructions per connection`);
} finally {
  echo.stop();
  if (KEEP === undefined) rmSync(dir, { recursive: true, force: true });
}
