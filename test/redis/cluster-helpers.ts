/**
 * A throw-away Redis Cluster for tests: three `redis-server` masters (from
 * PATH) on free ports of 127.0.0.1, joined with `redis-cli --cluster create`,
 * no replicas, no persistence, everything under one temporary directory.
 * `stop()` kills the servers and removes the directory.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { waitUntil } from "../helpers/wait.js";

const run = promisify(execFile);

/** Redis Cluster's bus listens on the client port + 10000. */
const BUS_OFFSET = 10_000;

export class ThrowawayCluster {
  private readonly children: ChildProcess[] = [];
  private stopped = false;
  private readonly onExit = (): void => {
    // The test process is going away without stop(): leave no server behind.
    for (const c of this.children) if (c.exitCode === null) c.kill("SIGKILL");
  };

  private constructor(
    readonly ports: readonly number[],
    readonly dir: string,
  ) {}

  /** Where a Cluster client starts (any one node is enough; it learns the rest). */
  get startupNodes(): { host: string; port: number }[] {
    return this.ports.map((port) => ({ host: "127.0.0.1", port }));
  }

  /**
   * Starts `size` masters, creates the cluster and waits (bounded by
   * `timeoutMs`) until every node reports cluster_state:ok. Throws if
   * redis-server or redis-cli is missing.
   */
  static async create(size = 3, timeoutMs = 15_000): Promise<ThrowawayCluster> {
    await requireBinaries();
    const ports: number[] = [];
    while (ports.length < size) {
      const p = await freeClusterPort();
      if (!ports.includes(p)) ports.push(p);
    }
    const c = new ThrowawayCluster(ports, mkdtempSync(join(tmpdir(), "portcullis-cluster-")));
    process.once("exit", c.onExit);
    try {
      await c.start(timeoutMs);
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  private async start(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    const left = (): number => Math.max(1, Math.ceil(deadline - performance.now()));
    for (const port of this.ports) {
      const child = spawn(
        "redis-server",
        [
          "--port", String(port),
          "--bind", "127.0.0.1",
          "--cluster-enabled", "yes",
          "--cluster-config-file", join(this.dir, `nodes-${port}.conf`),
          "--save", "",
          "--appendonly", "no",
          "--dir", this.dir,
        ],
        { stdio: "ignore" },
      );
      this.children.push(child);
    }
    const nodes = this.ports.map((port) => adminClient(port));
    try {
      for (const n of nodes) await waitUntil(async () => (await ask(n, ["PING"])) === "PONG", { timeoutMs: left(), message: `redis-server on ${n.options.port}` });
      await run(
        "redis-cli",
        ["--cluster", "create", ...this.ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "0", "--cluster-yes"],
        { timeout: left() },
      ).catch((err: unknown) => {
        const e = err as { message?: string; stdout?: string; stderr?: string };
        throw new Error(`redis-cli --cluster create failed: ${e.message ?? String(err)}\n${e.stdout ?? ""}${e.stderr ?? ""}`, { cause: err });
      });
      for (const n of nodes) {
        await waitUntil(async () => {
            const info = await ask(n, ["CLUSTER", "INFO"]);
            return typeof info === "string" && info.includes("cluster_state:ok") && info.includes(`cluster_known_nodes:${this.ports.length}`);
          }, { timeoutMs: left(), message: `cluster_state:ok on node ${n.options.port}` });
      }
    } finally {
      for (const n of nodes) n.disconnect();
    }
  }

  /**
   * The port of the master serving each slot, read once with CLUSTER SLOTS
   * (the cluster does not reshard during a test): key -> port.
   */
  async slotOwners(): Promise<(key: string) => number> {
    const r = adminClient(this.ports[0]!);
    try {
      const rows = (await ask(r, ["CLUSTER", "SLOTS"])) as [number, number, [string, number, ...unknown[]], ...unknown[]][] | undefined;
      if (!Array.isArray(rows)) throw new Error("CLUSTER SLOTS did not answer");
      const owner = new Array<number>(16_384).fill(-1);
      for (const [start, end, master] of rows) for (let s = start; s <= end; s++) owner[s] = Number(master[1]);
      return (key) => owner[keySlot(key)]!;
    } finally {
      r.disconnect();
    }
  }

  /** Kills every server and removes the directory. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    process.off("exit", this.onExit);
    await Promise.all(
      this.children.map(async (c) => {
        if (c.exitCode !== null || c.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
        c.kill("SIGKILL");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      }),
    );
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A plain (non-cluster) connection to one node, failing fast instead of queueing. */
export function adminClient(port: number): Redis {
  const r = new Redis({ host: "127.0.0.1", port, lazyConnect: true, enableOfflineQueue: true, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  // Refused connections while a server starts are expected; callers see failed commands.
  r.on("error", () => {});
  return r;
}

/** One command bounded by 500 ms; undefined on any error or timeout. */
async function ask(r: Redis, args: [string, ...string[]]): Promise<unknown> {
  if (r.status === "wait") r.connect().catch(() => {});
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(undefined), 500);
    r.call(...args).then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      () => {
        clearTimeout(t);
        resolve(undefined);
      },
    );
  });
}

async function requireBinaries(): Promise<void> {
  for (const bin of ["redis-server", "redis-cli"]) {
    try {
      await run(bin, ["--version"], { timeout: 5000 });
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === "ENOENT") {
        throw new Error(`${bin} was not found on PATH: the Redis Cluster tests need it (Debian/Ubuntu: apt-get install redis-server)`, {
          cause: err,
        });
      }
      throw err;
    }
  }
}

/** A free port whose cluster bus port (+10000) is free too. */
async function freeClusterPort(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const p = await freePort(0);
    if (p <= 0 || p + BUS_OFFSET > 65_535) continue;
    if ((await freePort(p + BUS_OFFSET)) === p + BUS_OFFSET) return p;
  }
  throw new Error("no free port pair (port and port + 10000) found on 127.0.0.1");
}

/** Binds `port` (0: any) on 127.0.0.1 and releases it; resolves the port, or -1 if it was taken. */
async function freePort(port: number): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(-1));
    s.listen(port, "127.0.0.1", () => {
      const a = s.address();
      const got = typeof a === "object" && a !== null ? a.port : -1;
      s.close(() => resolve(got));
    });
  });
}

/** CRC16/XMODEM, the checksum Redis Cluster slots are made of. */
function crc16(buf: Buffer): number {
  let crc = 0;
  for (const byte of buf) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The Cluster slot of `key`, hash tags included (what CLUSTER KEYSLOT answers). */
export function keySlot(key: string): number {
  let k = key;
  const open = key.indexOf("{");
  if (open >= 0) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) k = key.slice(open + 1, close);
  }
  return crc16(Buffer.from(k)) % 16_384;
}
