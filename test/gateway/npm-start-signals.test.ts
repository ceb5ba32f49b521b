/**
 * A supervisor that stops `npm start` with SIGTERM to npm's own PID must not
 * leave a gateway listening: npm signals its child, and the start script
 * execs the gateway so that child is the gateway itself (a shell between
 * them would swallow the signal).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import { withTimeout } from "./fixtures.js";

const root = new URL("../..", import.meta.url).pathname;

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1" });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

test("npm start, then SIGTERM to npm's PID: nothing left listening within 5 s, and the gateway logs its stop", async () => {
  // The example config listens on 8080; a free port keeps this test apart from anything else on the machine.
  // Its own process group, so a failing test can still kill npm and everything under it.
  const child = spawn("npm", ["start", "--silent"], {
    cwd: root,
    detached: true,
    env: { ...process.env, PORTCULLIS__LISTENER__0__BIND: "127.0.0.1:0", PORTCULLIS__SHUTDOWN_TIMEOUT: "2s" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  try {
    const port = await withTimeout(
      new Promise<number>((resolve) => {
        const tick = (): void => {
          const m = /up on 127\.0\.0\.1:(\d+)/.exec(stderr);
          if (m) resolve(Number(m[1]));
          else setTimeout(tick, 50);
        };
        tick();
      }),
      // npm start builds dist/ first (incremental): bounded generously, it is a start, not a measured speed.
      120_000,
      "gateway up under npm start",
    );
    assert.ok(await listening(port));
    child.kill("SIGTERM");
    const gone = await withTimeout(
      new Promise<boolean>((resolve) => {
        const tick = async (): Promise<void> => {
          if (!(await listening(port))) resolve(true);
          else setTimeout(() => void tick(), 100);
        };
        void tick();
      }),
      5000,
      "nothing listening after SIGTERM to npm",
    );
    assert.ok(gone);
    // The gateway itself got the signal (not killed with the shell): it logged a clean stop. What is
    // bounded here is that the line comes, not how fast (the drain's own bound is 2 s); generously, for
    // a loaded machine, and a failure shows what the gateway wrote.
    await withTimeout(
      new Promise<void>((resolve) => {
        const tick = (): void => (stdout.includes("stopped") ? resolve() : void setTimeout(tick, 50));
        tick();
      }),
      15_000,
      "event=stopped",
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n--- stdout\n${stdout.slice(-3000)}\n--- stderr\n${stderr.slice(-2000)}`, { cause: e });
    });
  } finally {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      // The group is already gone.
    }
    child.stdout!.destroy();
    child.stderr!.destroy();
  }
});
