/**
 * A real `portcullis run -c FILE` (the built CLI), with its stdout (the log)
 * and stderr collected, and bounded waits on them.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { CLI } from "./cli.js";
import { withTimeout } from "../gateway/fixtures.js";

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
    // The polling stops with the wait: a poll left running after a timeout keeps the test file's process alive forever.
    let waiting = true;
    try {
      await withTimeout(
        new Promise<void>((resolve) => {
          const tick = (): void => (pred() ? resolve() : void (waiting && setTimeout(tick, 25)));
          tick();
        }),
        ms,
        what,
      );
    } finally {
      waiting = false;
    }
  }

  /** Occurrences of `s` in the log. */
  count(s: string): number {
    return this.stdout.split(s).length - 1;
  }

  exit(ms = 10_000): Promise<number | null> {
    return withTimeout(new Promise((r) => (this.child.exitCode !== null ? r(this.child.exitCode) : this.child.once("exit", (code) => r(code)))), ms, "exit");
  }
}
