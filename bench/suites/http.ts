/**
 * HTTP middleware overhead: requests/s of a hello-world server with no
 * limiter, with Portcullis (a limit that never rejects, headers on), and with
 * the framework's usual limiter (express-rate-limit, @fastify/rate-limit),
 * on node:http, Fastify and Express 5. autocannon, 50 connections, 10 s per
 * scenario, loopback. Each server runs in its own process (this file, started
 * with PORTCULLIS_HTTP_BENCH=<scenario>) so that autocannon and the server
 * do not share an event loop. Added µs per request = 1e6/rps(with) − 1e6/rps(without).
 */
import { type ChildProcess, spawn } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

/** The part of autocannon's API used here (it ships no type declarations). */
type Autocannon = (o: { url: string; connections: number; duration: number; overallRate?: number }) => Promise<{ requests: { total: number }; duration: number; non2xx: number }>;
const autocannon = createRequire(import.meta.url)("autocannon") as Autocannon;

export const title = "HTTP middleware: requests/s with a never-rejecting limit vs none, vs express-rate-limit and @fastify/rate-limit";

const SELF = fileURLToPath(import.meta.url);
const DURATION_S = Number(process.env.HTTP_BENCH_SECONDS ?? 10);
const CONNECTIONS = 50;
const ROUNDS = 10;
/** The fixed-rate phase: rounds (the first is a warm-up) of this many seconds per scenario. */
const FIXED_ROUNDS = 3;
const FIXED_SLICE_S = 1;
const NEVER = 1_000_000_000;

type Scenario =
  | "node"
  | "node+portcullis"
  | "fastify"
  | "fastify+portcullis"
  | "fastify+@fastify/rate-limit"
  | "fastify+noop"
  | "express"
  | "express+portcullis"
  | "express+express-rate-limit"
  | "express+noop";

const rules = () => ({
  routes: [{ name: "api", match: "/*", limit: { algorithm: "fixed_window" as const, permitLimit: NEVER, windowMs: 60_000, key: "ip" as const } }],
});

/** Starts the server of one scenario on an ephemeral loopback port; resolves to the port. */
async function serve(s: Scenario): Promise<number> {
  const { withRateLimit, fastifyRateLimit, expressRateLimit } = await import("../../src/features/http/index.js");
  const hello = (_req: http.IncomingMessage, res: http.ServerResponse) => {
    res.setHeader("content-type", "text/plain");
    res.end("hello");
  };
  if (s === "node" || s === "node+portcullis") {
    const server = http.createServer(s === "node" ? hello : withRateLimit(rules(), hello));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return (server.address() as AddressInfo).port;
  }
  if (s.startsWith("fastify")) {
    const Fastify = (await import("fastify")).default;
    const app = Fastify({ logger: false });
    if (s === "fastify+portcullis") await app.register(fastifyRateLimit, rules());
    if (s === "fastify+@fastify/rate-limit") await app.register((await import("@fastify/rate-limit")).default, { max: NEVER, timeWindow: 60_000 });
    // What any onRequest hook costs in the framework, for scale.
    if (s === "fastify+noop") app.addHook("onRequest", (_req, _reply, done) => done());
    app.get("/", async () => "hello");
    await app.listen({ port: 0, host: "127.0.0.1" });
    return (app.server.address() as AddressInfo).port;
  }
  const express = (await import("express")).default;
  const app = express();
  app.disable("x-powered-by");
  if (s === "express+portcullis") app.use(expressRateLimit(rules()));
  if (s === "express+express-rate-limit") app.use((await import("express-rate-limit")).rateLimit({ windowMs: 60_000, limit: NEVER }));
  // What any middleware layer costs in the framework, for scale.
  if (s === "express+noop") app.use((_req, _res, next) => next());
  app.get("/", (_req, res) => {
    res.type("text/plain").send("hello");
  });
  const server = app.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  return (server.address() as AddressInfo).port;
}

interface Server {
  child: ChildProcess;
  port: number;
}

function startServer(s: Scenario): Promise<Server> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", SELF], { env: { ...process.env, PORTCULLIS_HTTP_BENCH: s }, stdio: ["ignore", "pipe", "inherit", "ipc"] });
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`${s}: server did not start`));
    }, 60_000);
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /port=(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]) });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${s}: server exited with ${code}`));
    });
  });
}

/** CPU time (user + system, µs) the server process has used so far. */
function serverCpu(s: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("server did not report its CPU time")), 10_000);
    s.child.once("message", (m: { user: number; system: number }) => {
      clearTimeout(timer);
      resolve(m.user + m.system);
    });
    s.child.send("cpu");
  });
}

interface Measured {
  /** Requests per wall-clock second at full load. */
  rps: number;
  /** Server CPU µs per request at the fixed rate. */
  cpuUs: number;
  non2xx: number;
}

/**
 * Each scenario of a group. All servers of the group run at once (an idle
 * one costs nothing) and are measured in alternating slices, so that load
 * from elsewhere on a shared machine falls on every scenario alike.
 *
 * First, at a fixed offered rate (the same for every scenario, well below
 * saturation), the server process's CPU time per request: the cost a
 * limiter adds, measured where every scenario does the same amount of
 * batching. (At full load a server that happens to get fewer requests
 * batches less and pays more per request, which would blur a difference of
 * a microsecond.) This phase also warms the JIT. Then requests/s at full
 * load, ROUNDS slices adding up to DURATION_S per scenario.
 */
async function measureGroup(scenarios: Scenario[], rate: number): Promise<Measured[]> {
  const servers = await Promise.all(scenarios.map(startServer));
  try {
    const totals = scenarios.map(() => ({ requests: 0, seconds: 0, cpu: 0, cpuRequests: 0, non2xx: 0 }));
    for (let r = 0; r < FIXED_ROUNDS; r++) {
      for (let i = 0; i < servers.length; i++) {
        const before = await serverCpu(servers[i]!);
        const res = await autocannon({ url: `http://127.0.0.1:${servers[i]!.port}/`, connections: CONNECTIONS, duration: FIXED_SLICE_S, overallRate: rate });
        const t = totals[i]!;
        if (r === 0) continue; // the first round is the warm-up
        t.cpu += (await serverCpu(servers[i]!)) - before;
        t.cpuRequests += res.requests.total;
      }
    }
    const slice = DURATION_S / ROUNDS;
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < servers.length; i++) {
        const res = await autocannon({ url: `http://127.0.0.1:${servers[i]!.port}/`, connections: CONNECTIONS, duration: slice });
        const t = totals[i]!;
        t.requests += res.requests.total;
        t.seconds += res.duration;
        t.non2xx += res.non2xx;
      }
    }
    return totals.map((t) => ({ rps: t.requests / t.seconds, cpuUs: t.cpu / t.cpuRequests, non2xx: t.non2xx }));
  } finally {
    for (const { child } of servers) {
      child.removeAllListeners("exit");
      child.kill();
    }
  }
}

/**
 * The middleware's own cost, in this process and without sockets: a
 * node:http listener called with real IncomingMessage / ServerResponse
 * objects, with and without Portcullis in front (best of 5 runs, so a burst
 * of load elsewhere does not count). Setting the two RateLimit headers is
 * included; writing them to a socket is not.
 */
async function inProcess(): Promise<{ bare: number; ours: number; noHeaders: number; decide: number }> {
  const net = await import("node:net");
  const { withRateLimit, HttpLimiter } = await import("../../src/features/http/index.js");
  const sock = new net.Socket();
  Object.defineProperty(sock, "remoteAddress", { value: "127.0.0.1" });
  const hello = (_req: http.IncomingMessage, res: http.ServerResponse) => res.setHeader("content-type", "text/plain");
  const N = 200_000;
  const time = (fn: http.RequestListener): number => {
    const one = () => {
      const req = new http.IncomingMessage(sock);
      req.method = "GET";
      req.url = "/";
      req.rawHeaders = ["Host", "127.0.0.1", "Connection", "keep-alive"];
      fn(req, new http.ServerResponse(req));
    };
    for (let i = 0; i < 50_000; i++) one();
    let best = Infinity;
    for (let r = 0; r < 5; r++) {
      const t = process.hrtime.bigint();
      for (let i = 0; i < N; i++) one();
      best = Math.min(best, Number(process.hrtime.bigint() - t) / N);
    }
    return best / 1000;
  };
  const limiter = new HttpLimiter(rules());
  const info = { method: "GET", url: "/", headers: { host: "127.0.0.1" }, rawHeaders: ["Host", "127.0.0.1"], remoteAddress: "127.0.0.1" };
  let decide = Infinity;
  for (let r = 0; r < 5; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < N; i++) limiter.decide(info);
    decide = Math.min(decide, Number(process.hrtime.bigint() - t) / N / 1000);
  }
  return {
    bare: time(hello),
    ours: time(withRateLimit(rules(), hello)),
    noHeaders: time(withRateLimit({ ...rules(), headers: { onAllowed: false } }, hello)),
    decide,
  };
}

const k = (n: number) => `${(n / 1000).toFixed(1)} k`;
const us = (n: number) => n.toFixed(2);

export async function run(): Promise<void> {
  // [name, bare, ours, peer, peer name, target µs, fixed rate req/s, no-op middleware]
  const groups: [string, Scenario, Scenario, Scenario | undefined, string | undefined, number, number, Scenario | undefined][] = [
    ["node:http", "node", "node+portcullis", undefined, undefined, 1.5, 10_000, undefined],
    ["Fastify", "fastify", "fastify+portcullis", "fastify+@fastify/rate-limit", "@fastify/rate-limit", 1.5, 10_000, "fastify+noop"],
    ["Express 5", "express", "express+portcullis", "express+express-rate-limit", "express-rate-limit", 3, 2_000, "express+noop"],
  ];
  const only = process.env.BENCH_HTTP_ONLY;
  console.log(`autocannon, ${CONNECTIONS} connections, 127.0.0.1, never-rejecting limit keyed by IP, RateLimit headers on. req/s: full load, ${DURATION_S} s per scenario in ${ROUNDS} alternating slices.`);
  console.log(`added µs/req wall = 1e6/rps(with) - 1e6/rps(without). added µs/req CPU = server CPU time per request, with - without, at a fixed offered rate (${(FIXED_ROUNDS - 1) * FIXED_SLICE_S} s per scenario after a warm-up).`);
  console.log("| framework | no limiter | portcullis | added µs/req wall | added µs/req CPU | peer | peer req/s | peer added wall | peer added CPU | portcullis / peer req/s | target (CPU) |");
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  const ip = await inProcess();
  console.log(
    `in process (node:http listener, real request/response objects, no socket, best of 5): bare ${us(ip.bare)} µs/req, with portcullis ${us(ip.ours)} (+${us(ip.ours - ip.bare)}), without headers on allowed ${us(ip.noHeaders)} (+${us(ip.noHeaders - ip.bare)}); HttpLimiter.decide alone ${us(ip.decide)} µs`,
  );
  for (const [name, bare, ours, peer, peerName, target, rate, noop] of groups) {
    if (only !== undefined && !name.toLowerCase().includes(only)) continue;
    const ms = await measureGroup([bare, ours, ...(peer ? [peer] : []), ...(noop ? [noop] : [])], rate);
    const [b, o] = ms;
    const p = peer ? ms[2] : undefined;
    const n = noop ? ms[peer ? 3 : 2] : undefined;
    if (b === undefined || o === undefined) throw new Error(`${name}: no measurement`);
    const wall = (m: Measured) => 1e6 / m.rps - 1e6 / b.rps;
    const cpu = (m: Measured) => m.cpuUs - b.cpuUs;
    console.log(
      `| ${name} | ${k(b.rps)} | ${k(o.rps)} | ${us(wall(o))} | ${us(cpu(o))} | ${peerName ?? "-"} | ${p ? k(p.rps) : "-"} | ${p ? us(wall(p)) : "-"} | ${p ? us(cpu(p)) : "-"} | ${p ? `${(o.rps / p.rps).toFixed(2)}x` : "-"} | <= ${target} µs ${cpu(o) <= target ? "met" : "MISSED"} |`,
    );
    console.log(`  server CPU µs/req at ${rate} req/s: none ${us(b.cpuUs)}, portcullis ${us(o.cpuUs)}${p ? `, ${peerName} ${us(p.cpuUs)}` : ""}${n ? `, a no-op middleware ${us(n.cpuUs)}` : ""}`);
    if (n) console.log(`  a no-op middleware adds ${us(wall(n))} µs/req wall, ${us(cpu(n))} CPU; portcullis beyond it: ${us(wall(o) - wall(n))} wall, ${us(cpu(o) - cpu(n))} CPU`);
    const bad = ms.reduce((t, m) => t + m.non2xx, 0);
    if (bad > 0) console.log(`  (${name}: ${bad} non-2xx responses: a limiter rejected, so the numbers are not comparable)`);
  }
}

const scenario = process.env.PORTCULLIS_HTTP_BENCH as Scenario | undefined;
if (scenario !== undefined) {
  const port = await serve(scenario);
  process.on("message", (m) => {
    if (m === "cpu") process.send!(process.cpuUsage());
  });
  // The parent going away (killed bench) takes this server with it.
  process.on("disconnect", () => process.exit(0));
  console.log(`port=${port}`);
}
