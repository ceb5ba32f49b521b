/**
 * The SSH tunnel server example (examples/ssh-tunnel-server/server.mjs) as a
 * child process, keys made with ssh-keygen, and the real OpenSSH client
 * (/usr/bin/ssh) pointed at it. Every wait is bounded.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { waitUntil } from "../helpers/wait.js";

const run = promisify(execFile);
const SERVER = new URL("../../examples/ssh-tunnel-server/server.mjs", import.meta.url).pathname;
export const WAIT_MS = 10_000;

export interface KeyPair {
  path: string;
  /** `ssh-keygen -lf` of the public key: SHA256:... */
  fingerprint: string;
}

export async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "portcullis-ssh-"));
}

export async function makeKey(dir: string, name: string): Promise<KeyPair> {
  const path = join(dir, name);
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path], { timeout: WAIT_MS });
  const { stdout } = await run("ssh-keygen", ["-lf", `${path}.pub`], { timeout: WAIT_MS });
  return { path, fingerprint: stdout.split(" ")[1]! };
}


export class TunnelServer {
  /** Every line the server wrote, standard output and standard error. */
  readonly lines: string[] = [];
  port = 0;
  private constructor(private readonly child: ChildProcess) {}

  static async start(flags: string[]): Promise<TunnelServer> {
    const child = spawn(process.execPath, [SERVER, "--port", "0", "--bind", "127.0.0.1", ...flags], { stdio: ["ignore", "pipe", "pipe"] });
    const s = new TunnelServer(child);
    for (const stream of [child.stdout!, child.stderr!]) {
      let rest = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => {
        const parts = (rest + chunk).split("\n");
        rest = parts.pop()!;
        s.lines.push(...parts);
      });
    }
    const listening = await waitUntil(() => s.lines.find((l) => l.includes("msg=listening")), { timeoutMs: WAIT_MS, intervalMs: 20, message: "the server's listening line" });
    s.port = Number(/listen=127\.0\.0\.1:(\d+)/.exec(listening)![1]);
    return s;
  }

  /** Lines with this message (`auth attempt`, `connection opened`...) from this client address. */
  events(msg: string, remote?: string): string[] {
    const m = msg.includes(" ") ? ` msg="${msg}" ` : ` msg=${msg} `;
    return this.lines.filter((l) => l.includes(m) && (remote === undefined || l.includes(` remote_addr=${remote} `) || l.endsWith(` remote_addr=${remote}`)));
  }

  async logFile(dir: string): Promise<string> {
    const path = join(dir, "server.log");
    await writeFile(path, `${this.lines.join("\n")}\n`);
    return path;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    this.child.kill("SIGTERM");
    await Promise.race([once(this.child, "exit"), new Promise((r) => setTimeout(r, WAIT_MS))]);
  }
}

const SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"];

export interface SshRun {
  child: ChildProcess;
  /** Resolves with the exit code (null if killed). */
  exited: Promise<number | null>;
  stderr: () => string;
}

/** Starts /usr/bin/ssh from `source` (its -b address) with the given keys; `extra` before the destination. */
export function ssh(port: number, source: string, keys: KeyPair[], extra: string[] = []): SshRun {
  const args = [...SSH_OPTIONS, "-p", String(port), "-b", source, ...keys.flatMap((k) => ["-i", k.path]), ...extra, "tunnel@127.0.0.1"];
  const child = spawn("/usr/bin/ssh", args, { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  // No ssh outlives its bound.
  const t = setTimeout(() => child.kill("SIGKILL"), 30_000);
  void exited.then(() => clearTimeout(t));
  return { child, exited, stderr: () => err };
}

/** Waits for the exit of an ssh that should end by itself; fails if it does not within the bound. */
export async function exitOf(r: SshRun): Promise<number | null> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`ssh did not exit; stderr: ${r.stderr()}`)), WAIT_MS);
  });
  try {
    return await Promise.race([r.exited, timeout]);
  } finally {
    clearTimeout(t);
  }
}

export async function stopSsh(r: SshRun): Promise<void> {
  if (r.child.exitCode !== null || r.child.signalCode !== null) return;
  r.child.kill("SIGTERM");
  await exitOf(r);
}

