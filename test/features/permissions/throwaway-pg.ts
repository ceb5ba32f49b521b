import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../helpers/free-port.js";

/**
 * A PostgreSQL cluster of the test's own, on a free port, that the test may
 * stop and start again (what the shared server must never be put through).
 * Run as the postgres user when the tests run as root, as initdb requires.
 */
export interface ThrowawayPg {
  readonly url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the cluster (if running) and deletes its files. */
  destroy(): Promise<void>;
}

function binDir(): string {
  const base = "/usr/lib/postgresql";
  const versions = existsSync(base) ? readdirSync(base).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(join(base, v, "bin", "initdb"))) return join(base, v, "bin");
  throw new Error("initdb not found under /usr/lib/postgresql (apt-get install -y postgresql)");
}

function run(cmd: string[], timeoutMs = 60_000): Promise<void> {
  const asUser = process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--"] : [];
  const argv = [...asUser, ...cmd];
  return new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs }, (err, _out, stderr) => {
      if (err) reject(new Error(`${cmd[0]} failed: ${String(stderr).trim().split("\n")[0] ?? err.message}`));
      else resolve();
    });
  });
}

export async function startThrowawayPg(): Promise<ThrowawayPg> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), "portcullis-pg-"));
  if (process.getuid?.() === 0) await new Promise<void>((res, rej) => execFile("chown", ["-R", "postgres", dir], (e) => (e ? rej(e) : res())));
  const data = join(dir, "data");
  const port = await freePort();
  await run([join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]);
  let running = false;
  const start = async () => {
    await run([join(bin, "pg_ctl"), "-D", data, "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, "-w", "-t", "30", "-l", join(dir, "log"), "start"]);
    running = true;
  };
  const stop = async () => {
    running = false;
    await run([join(bin, "pg_ctl"), "-D", data, "-m", "fast", "-w", "-t", "30", "stop"]);
  };
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start,
    stop,
    async destroy() {
      if (running) await stop().catch(() => run([join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "stop"]).catch(() => {}));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
