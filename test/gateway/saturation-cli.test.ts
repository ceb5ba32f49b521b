/**
 * IP churn against a real `portcullis run` process: more addresses than its
 * failed-login table holds (guard.max_tracked = 200) each fail three logins
 * on a connect listener with Basic auth, from their own loopback source
 * address in 127.64.0.0/10. Afterwards every one of them is refused, even
 * with the right password, and /metrics shows the saturation. Outcomes are
 * asserted, never rates, so a loaded machine only makes it slower.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import assert from "node:assert/strict";
import { Client, connectHead, userHash, withTimeout } from "./fixtures.js";
import { sample } from "../observability/fixtures.js";
import { sleep } from "../helpers/wait.js";

const TOKEN = "saturation-test-token-0123456789";
const TRACKED = 200;
/** Three /24s of 100 addresses each: the table fills during the second, the third meets defensive mode. */
const ADDRESSES = [0, 1, 2].flatMap((c) => Array.from({ length: 100 }, (_, i) => `127.64.${c}.${i + 1}`));

/** One connection from `local` that sends up to three CONNECTs with a wrong password; resolves when the gateway closes it. */
async function failThreeTimes(port: number, local: string): Promise<void> {
  const c = new Client(port, local);
  try {
    await c.connected(10_000).catch(() => {});
    for (let i = 1; i <= 3 && !c.closed; i++) {
      c.write(connectHead("127.0.0.1:9", { user: "alice", password: `wrong-${i}` }));
      await c.until(() => c.text().split("HTTP/1.1 407").length > i, 20_000, `answer ${i} to ${local}`);
    }
    await c.waitClosed(20_000);
  } finally {
    c.destroy();
  }
}

/** Whether a connection from `local` with the right password is refused (closed with no tunnel). */
async function refusedWithRightPassword(port: number, local: string): Promise<boolean> {
  const c = new Client(port, local);
  try {
    await c.connected(10_000).catch(() => {});
    c.write(connectHead("127.0.0.1:9", { user: "alice", password: "s3cret" }));
    await c.until(() => c.text().includes("\r\n\r\n"), 20_000, `answer or close for ${local}`);
    return !c.text().startsWith("HTTP/1.1 200") && !c.text().startsWith("HTTP/1.1 502");
  } finally {
    c.destroy();
  }
}

async function inBatches<T>(items: T[], size: number, fn: (x: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

test("portcullis run: 300 addresses past a 200-entry table, 3 failed logins each, ban.failures = 3: all refused afterwards, saturation on /metrics", { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-saturation-"));
  const file = join(dir, "gateway.toml");
  writeFileSync(
    file,
    [
      "[users]",
      `alice = "${await userHash("s3cret")}"`,
      "[guard]",
      `max_tracked = ${TRACKED}`,
      "max_auth_attempts = 3",
      'ban = { failures = 3, backoff_after = 10 }',
      'saturation = { duration = "10m", ipv4_prefix = 24 }',
      "[[policy.rule]]",
      'identities = ["alice"]',
      'hosts = ["*"]',
      'ports = ["1-65535"]',
      'cidrs = ["127.0.0.0/8"]',
      "[[listener]]",
      'name = "egress"',
      'kind = "connect"',
      'bind = "127.0.0.1:0"',
      "[admin]",
      "enabled = true",
      'bind = "127.0.0.1:0"',
      "",
    ].join("\n"),
  );
  const child = spawn(process.execPath, ["bin/portcullis.js", "run", "-c", file], { env: { ...process.env, PORTCULLIS_ADMIN_TOKEN: TOKEN }, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  let stdout = "";
  let partial = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdout.on("data", (d: Buffer) => {
    // Keep only what the test reads: the defensive-mode lines (the log has a line per connection).
    const lines = (partial + d.toString()).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) if (line.includes("defensive mode")) stdout += `${line}\n`;
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  try {
    const { port, admin } = await withTimeout(
      (async () => {
        for (;;) {
          const l = /listener egress \(connect\) up on 127\.0\.0\.1:(\d+)/.exec(stderr);
          const a = /admin listener up on (http:\/\/\S+)/.exec(stderr);
          if (l && a) return { port: Number(l[1]), admin: a[1]! };
          if (child.exitCode !== null) throw new Error(`gateway exited: ${stderr}`);
          await sleep(50);
        }
      })(),
      30_000,
      "gateway up",
    );
    await inBatches(ADDRESSES, 20, (a) => failThreeTimes(port, a));

    const served: string[] = [];
    await inBatches(ADDRESSES, 20, async (a) => {
      if (!(await refusedWithRightPassword(port, a))) served.push(a);
    });
    assert.deepEqual(served, [], "every offender is refused, banned or covered by its prefix");
    // An address that never failed, in a /24 banned in defensive mode, is refused; one in a quiet /24 is served.
    assert.equal(await refusedWithRightPassword(port, "127.64.2.200"), true);
    assert.equal(await refusedWithRightPassword(port, "127.65.0.1"), false);

    const metrics = await (await fetch(`${admin}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(10_000) })).text();
    assert.equal(sample(metrics, "portcullis_guard_defensive_mode"), 1);
    assert.equal(sample(metrics, "portcullis_guard_defensive_mode_starts_total"), 1);
    assert.equal(sample(metrics, "portcullis_guard_tracked_entries", { table: "address" }), TRACKED);
    assert.ok(sample(metrics, "portcullis_guard_tracked_entries", { table: "prefix" }) >= 1);
    assert.equal(sample(metrics, "portcullis_guard_live_evictions_total"), 0);
    assert.ok(sample(metrics, "portcullis_bans_total", { reason: "auth_failures" }) >= TRACKED + 1);
  } finally {
    child.kill("SIGTERM");
  }
  assert.equal(await withTimeout(exited, 15_000, "exit"), 0);
  rmSync(dir, { recursive: true, force: true });
  // One start line, logged as a warning with the table's numbers.
  const lines = stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 1, stdout);
  assert.equal(lines[0]!.level, "warn");
  assert.equal(lines[0]!.reason, "table_full");
  assert.equal(lines[0]!.max_tracked, TRACKED);
});
