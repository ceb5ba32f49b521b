// Finds or starts the Redis and PostgreSQL servers the tests talk to.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const DEFAULT_REDIS = "redis://127.0.0.1:6379";
const DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/test";

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Sends PING and waits for +PONG, bounded by a timeout. */
function redisAnswers(url, timeoutMs = 1000) {
  return new Promise((resolve) => {
    let u;
    try {
      u = new URL(url);
    } catch {
      return resolve(false);
    }
    const sock = createConnection({ host: u.hostname || "127.0.0.1", port: Number(u.port || 6379) });
    const done = (ok) => {
      clearTimeout(t);
      sock.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    sock.on("error", () => done(false));
    sock.on("connect", () => sock.write("PING\r\n"));
    sock.on("data", (d) => done(d.toString().startsWith("+PONG") || d.toString().startsWith("-NOAUTH")));
  });
}

async function pgAnswers(url, timeoutMs = 2000) {
  const { default: pg } = await import("pg");
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  try {
    await client.connect();
    await client.query("select 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

function which(cmd) {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

async function waitFor(check, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

async function startRedis() {
  const bin = which("redis-server");
  if (!bin) throw new Error("no Redis answers and redis-server is not installed: apt-get install -y redis-server");
  const port = await freePort();
  const child = spawn(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  const url = `redis://127.0.0.1:${port}`;
  if (!(await waitFor(() => redisAnswers(url), 5000))) throw new Error(`throw-away redis-server on port ${port} did not answer`);
  return { url, stop: async () => child.kill("SIGTERM") };
}

function pgBinDir() {
  const base = "/usr/lib/postgresql";
  if (existsSync(base)) {
    const versions = readdirSync(base).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) if (existsSync(join(base, v, "bin", "initdb"))) return join(base, v, "bin");
  }
  const initdb = which("initdb");
  return initdb ? initdb.replace(/\/initdb$/, "") : undefined;
}

async function startPostgres() {
  const bin = pgBinDir();
  if (!bin) throw new Error("no PostgreSQL answers and initdb is not installed: apt-get install -y postgresql");
  const dir = mkdtempSync(join(tmpdir(), "portcullis-pg-"));
  const port = await freePort();
  const asUser = process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--"] : [];
  if (asUser.length) spawnSync("chown", ["-R", "postgres", dir]);
  const run = (args) => spawnSync(asUser[0] ?? args[0], asUser.length ? [...asUser.slice(1), ...args] : args.slice(1), { encoding: "utf8" });
  const init = run([join(bin, "initdb"), "-D", join(dir, "data"), "-U", "postgres", "--auth=trust"]);
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr.split("\n")[0]}`);
  const start = run([join(bin, "pg_ctl"), "-D", join(dir, "data"), "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, "-w", "start", "-l", join(dir, "log")]);
  if (start.status !== 0) throw new Error(`pg_ctl start failed: ${start.stderr.split("\n")[0]}`);
  run([join(bin, "createdb"), "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "test"]);
  const url = `postgres://postgres@127.0.0.1:${port}/test`;
  return {
    url,
    stop: async () => {
      run([join(bin, "pg_ctl"), "-D", join(dir, "data"), "-m", "immediate", "stop"]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function ensureServices() {
  const stops = [];
  let redis = process.env.REDIS_URL ?? DEFAULT_REDIS;
  let pgUrl = process.env.DATABASE_URL ?? DEFAULT_PG;
  try {
    if (!(await redisAnswers(redis))) {
      console.log(`redis: nothing answers at ${redis}; starting a throw-away redis-server`);
      const r = await startRedis();
      redis = r.url;
      stops.push(r.stop);
    }
    if (!(await pgAnswers(pgUrl))) {
      console.log(`postgres: nothing answers at ${pgUrl}; starting a throw-away cluster`);
      const p = await startPostgres();
      pgUrl = p.url;
      stops.push(p.stop);
    }
  } catch (e) {
    for (const s of stops) await s();
    console.error(String(e.message ?? e));
    process.exit(1);
  }
  return {
    env: { REDIS_URL: redis, DATABASE_URL: pgUrl },
    stop: async () => {
      for (const s of stops) await s();
    },
  };
}
