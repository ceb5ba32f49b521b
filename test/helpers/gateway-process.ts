/**
 * A real `portcullis run -c FILE` (the built CLI), with its stdout (the log)
 * and stderr collected, bounded waits on them, and a bounded stop.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { CLI } from "./cli.js";
import { withTimeout } from "../gateway/fixtures.js";
import { waitUntil } from "./wait.js";

const root = new URL("../..", import.meta.url).pathname;

export class GatewayProcess {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  /** `env`: variables added to this process's environment (PORTCULLIS__ overrides, tokens). */
  constructor(file: string, env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(process.execPath, [CLI, "run", "-c", file], { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    this.child.stdout!.on("data", (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr!.on("data", (d: Buffer) => (this.stderr += d.toString()));
  }

  async waitFor(pred: () => boolean, what: string, ms = 15_000): Promise<void> {
    await waitUntil(pred, { timeoutMs: ms, intervalMs: 25, message: what });
  }

  /**
   * Waits until `re` matches stderr (where the CLI says what it started) and
   * returns the match. Fails at once if the process exits first, and a
   * failure carries what the gateway wrote on stderr.
   */
  async stderrMatch(re: RegExp, what: string, ms: number): Promise<RegExpExecArray> {
    try {
      return await waitUntil(
        () => {
          const m = re.exec(this.stderr);
          if (m === null && this.child.exitCode !== null) throw new Error(`the gateway exited (${this.child.exitCode}) before ${what}`);
          return m;
        },
        { timeoutMs: ms, intervalMs: 25, message: what },
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}; the gateway's stderr:\n${this.stderr}`, { cause: e });
    }
  }

  /** The admin listener's base URL, once it is up. */
  async adminUrl(ms: number): Promise<string> {
    return (await this.stderrMatch(/admin listener up on (http:\/\/\S+)/, "admin listener up", ms))[1]!;
  }

  /** Occurrences of `s` in the log. */
  count(s: string): number {
    return this.stdout.split(s).length - 1;
  }

  exit(ms = 10_000): Promise<number | null> {
    return withTimeout(new Promise((r) => (this.child.exitCode !== null ? r(this.child.exitCode) : this.child.once("exit", (code) => r(code)))), ms, "exit");
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once("exit", () => r()));
    this.child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGKILL");
      await withTimeout(exited, 10_000, "exit after SIGKILL");
    }
  }
}
