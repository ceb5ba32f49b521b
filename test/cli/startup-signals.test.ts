/**
 * A signal that reaches `portcullis run` while it starts: the listeners are
 * bound (a supervisor may already see the port), the rest is still loading.
 * Before the gateway listened for signals the kernel's default ended it on
 * the spot, with no clean stop and its buffered log lost. Here the admin
 * listener's code loads after the data listener is up, which holds that
 * window open long enough to hit it every time.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { StartupSignals } from "../../src/cli/startup-signals.js";
import { GatewayProcess } from "../helpers/gateway-process.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function configFile(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "portcullis-startup-signals-"));
  dirs.push(dir);
  const file = join(dir, "portcullis.toml");
  await writeFile(
    file,
    [
      "[log]",
      'format = "json"',
      "[[listener]]",
      'name = "relay"',
      'kind = "tcp"',
      'bind = "127.0.0.1:0"',
      'upstream = "127.0.0.1:9"',
      "[admin]",
      "enabled = true",
      'bind = "127.0.0.1:0"',
      'token = "startup-signals-token-0123456789"',
      "",
    ].join("\n"),
  );
  return file;
}

/** Starts the gateway and sends `signal` the moment its data listener says it is up. */
async function signalAtListenerUp(signal: NodeJS.Signals): Promise<GatewayProcess> {
  const g = new GatewayProcess(await configFile());
  let sent = false;
  g.child.stderr!.on("data", () => {
    if (/listener relay \(tcp\) up/.test(g.stderr) && g.child.signalCode === null && !sent) {
      sent = true;
      g.child.kill(signal);
    }
  });
  return g;
}

describe("signals while `run` starts", () => {
  test("SIGTERM right after the listener is up: a clean stop (exit 0, the stop logged), not a kill", { timeout: 60_000 }, async () => {
    const g = await signalAtListenerUp("SIGTERM");
    try {
      const code = await g.exit(30_000);
      assert.equal(g.child.signalCode, null, `ended by ${g.child.signalCode}; stderr: ${g.stderr}`);
      assert.equal(code, 0, g.stderr);
      const lines = g.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(lines.some((l) => l.msg === "listener up"), "the start's log lines were written");
      assert.ok(lines.some((l) => l.msg === "stopping" && l.signal === "SIGTERM"), g.stdout);
      assert.ok(lines.some((l) => l.event === "stopped" || l.msg === "stopped"), g.stdout);
    } finally {
      await g.stop();
    }
  });

  test("SIGHUP right after the listener is up: the gateway keeps running and reloads", { timeout: 60_000 }, async () => {
    const g = await signalAtListenerUp("SIGHUP");
    try {
      await g.waitFor(() => g.stdout.includes('"config reloaded"'), "the reload of the kept SIGHUP", 30_000);
      assert.equal(g.child.exitCode, null, "still running");
      assert.equal(g.child.signalCode, null);
    } finally {
      await g.stop();
    }
  });
});

describe("StartupSignals", () => {
  function fakeProcess(): NodeJS.Process & { exited: number[] } {
    const p = new EventEmitter() as unknown as NodeJS.Process & { exited: number[] };
    p.exited = [];
    p.exit = ((code?: number) => void p.exited.push(code ?? 0)) as never;
    return p;
  }

  test("keeps the first stop signal and a SIGHUP, and stops listening when handed over", () => {
    const p = fakeProcess();
    const s = new StartupSignals(p);
    p.emit("SIGHUP");
    p.emit("SIGINT");
    assert.deepEqual(s.handOver(), { stop: "SIGINT", hup: true });
    assert.equal(p.listenerCount("SIGTERM") + p.listenerCount("SIGINT") + p.listenerCount("SIGHUP"), 0);
    assert.deepEqual(p.exited, []);
  });

  test("a second stop signal while starting exits at once", () => {
    const p = fakeProcess();
    const s = new StartupSignals(p);
    p.emit("SIGTERM");
    p.emit("SIGTERM");
    assert.deepEqual(p.exited, [1]);
    s.handOver();
  });

  test("nothing came: nothing is handed over", () => {
    const s = new StartupSignals(fakeProcess());
    assert.deepEqual(s.handOver(), { stop: undefined, hup: false });
  });
});
