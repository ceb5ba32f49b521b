/**
 * The shipped systemd unit: systemd itself accepts it, and it keeps the
 * choices that make a stop graceful (SIGTERM to the gateway alone, a stop
 * timeout longer than the default drain) and a bad configuration final.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { configOf } from "../gateway/fixtures.js";

const unit = new URL("../../deploy/systemd/portcullis.service", import.meta.url).pathname;

function directive(text: string, name: string): string | undefined {
  return new RegExp(`^${name}=(.*)$`, "m").exec(text)?.[1]?.trim();
}

test("systemd-analyze verify accepts deploy/systemd/portcullis.service", async () => {
  const { stdout, stderr } = await promisify(execFile)("systemd-analyze", ["verify", unit], { timeout: 30_000 });
  assert.equal((stdout + stderr).trim(), "", "systemd-analyze reports nothing");
});

test("the unit stops gracefully: Type=exec, KillMode=mixed, TimeoutStopSec above the default shutdown_timeout, exit 2 not restarted", () => {
  const text = readFileSync(unit, "utf8");
  assert.equal(directive(text, "Type"), "exec");
  assert.equal(directive(text, "KillMode"), "mixed");
  assert.equal(directive(text, "KillSignal"), "SIGTERM");
  assert.equal(directive(text, "ExecReload"), "/bin/kill -HUP $MAINPID");
  assert.equal(directive(text, "RestartPreventExitStatus"), "2");
  const stopSec = Number(/^(\d+)s$/.exec(directive(text, "TimeoutStopSec") ?? "")?.[1]);
  const defaultDrainMs = configOf({ listener: [{ name: "l", kind: "tcp", bind: "127.0.0.1:0", upstream: "127.0.0.1:1" }] }).shutdown_timeout;
  assert.ok(stopSec * 1000 > defaultDrainMs, `TimeoutStopSec ${stopSec}s must exceed the default drain of ${defaultDrainMs} ms`);
});
