/**
 * A real `portcullis run` with `workers = N`, started in its own process
 * group so that cleanup kills the primary and every worker it forked (a
 * worker orphaned by a failed test would keep a port and the test file
 * alive). Log, ports and bounded waits as in GatewayProcess.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI } from "../helpers/cli.js";
import { withTimeout } from "../gateway/fixtures.js";
import { waitUntil } from "../helpers/wait.js";

export { freePorts } from "../helpers/free-port.js";

const root = new URL("../..", import.meta.url).pathname;
export const TOKEN = "workers-test-token-0123456789abcdef";

export class ClusterProcess {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  /** The process has exited and its output pipes are read to the end. */
  private outputClosed = false;

  private constructor(
    readonly dir: string,
    readonly file: string,
  ) {
    this.child = spawn(process.execPath, [CLI, "run", "-c", file], { cwd: root, stdio: ["ignore", "pipe", "pipe"], detached: true });
    this.child.stdout!.on("data", (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr!.on("data", (d: Buffer) => (this.stderr += d.toString()));
    this.child.once("close", () => (this.outputClosed = true));
  }

  /** Starts `portcullis run` on `text` without waiting for anything. */
  static async spawn(text: string): Promise<ClusterProcess> {
    const dir = await mkdtemp(join(tmpdir(), "portcullis-workers-"));
    const file = join(dir, "portcullis.toml");
    await writeFile(file, text);
    return new ClusterProcess(dir, file);
  }

  static async start(text: string): Promise<ClusterProcess> {
    const p = await ClusterProcess.spawn(text);
    // Worker processes start slowly on a loaded machine: bounded, but generously.
    await p.waitFor(() => p.stderr.includes("workers up"), "workers up", 60_000);
    return p;
  }

  async rewrite(text: string): Promise<void> {
    await writeFile(this.file, text);
  }

  /** Lines of the JSON log, parsed. */
  lines(): Record<string, unknown>[] {
    return this.stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** Worker pids from the primary's "workers up" line. */
  workerPids(): number[] {
    const up = this.lines().find((l) => l.msg === "workers up");
    return String(up?.pids ?? "")
      .split(",")
      .filter(Boolean)
      .map(Number);
  }

  /**
   * Resolves once `pred` holds; rejects when `ms` pass first, or when the
   * process is gone with its output read to the end (nothing awaited can
   * come any more), with the output as it is at that moment.
   */
  async waitFor(pred: () => boolean, what: string, ms = 20_000): Promise<void> {
    try {
      await waitUntil(
        () => {
          if (pred()) return true;
          if (this.outputClosed) throw new Error(`the process ended (code ${this.child.exitCode}, signal ${this.child.signalCode}) before ${what}`);
          return false;
        },
        { timeoutMs: ms, intervalMs: 25, message: what },
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- stdout\n${this.stdout.slice(-3000)}\n--- stderr\n${this.stderr.slice(-2000)}`, { cause: e });
    }
  }

  exit(ms = 20_000): Promise<number | null> {
    return withTimeout(new Promise((r) => (this.child.exitCode !== null ? r(this.child.exitCode) : this.child.once("exit", (code) => r(code)))), ms, "exit");
  }

  /** The primary's aggregated /metrics (served by the admin worker). */
  async metrics(adminPort: number): Promise<string> {
    const res = await withTimeout(fetch(`http://127.0.0.1:${adminPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } }), 10_000, "GET /metrics");
    assert200(res.status);
    return res.text();
  }

  /** Kills the primary and every worker (the process group), and removes the directory. */
  async cleanup(): Promise<void> {
    try {
      process.kill(-this.child.pid!, "SIGKILL");
    } catch {
      // Already gone.
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

function assert200(status: number): void {
  if (status !== 200) throw new Error(`GET /metrics answered ${status}`);
}

/** The value of one series in a Prometheus text (0 when absent). */
export function series(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.slice(name.length + 1));
}

/** Ports free now on 127.0.0.1 (bound and released). */
/** Connects and resolves once connected (rejects with the socket error, e.g. ECONNREFUSED). */
export function connect(port: number): Promise<net.Socket> {
  return withTimeout(
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    }),
    10_000,
    `connect to ${port}`,
  );
}

/** Writes `payload` on an open tunnel to the echo server and resolves once all of it came back (it stays open). */
export function echoes(s: net.Socket, payload: Buffer, ms = 10_000): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve, reject) => {
      let got = Buffer.alloc(0);
      const onData = (d: Buffer): void => {
        got = Buffer.concat([got, d]);
        if (got.length >= payload.length) {
          s.off("data", onData);
          s.off("close", onClose);
          s.off("end", onClose);
          if (got.equals(payload)) resolve();
          else reject(new Error("echo differs"));
        }
      };
      const onClose = (): void => reject(new Error(`tunnel closed after ${got.length} of ${payload.length} bytes`));
      s.on("data", onData);
      s.once("close", onClose);
      // A half-open client (allowHalfOpen) sees a refusal as a FIN and no close: the reset its bytes
      // draw back arrives after Node has stopped reading, so nothing else would end this wait.
      s.once("end", onClose);
      s.write(payload);
    }),
    ms,
    "echo",
  );
}

/** One full round trip on a fresh connection: connect, send, get it back, close. */
export async function roundTrip(port: number, payload = Buffer.from("ping")): Promise<void> {
  const s = await connect(port);
  try {
    await echoes(s, payload);
  } finally {
    s.destroy();
  }
}
