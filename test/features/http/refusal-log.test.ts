/**
 * Every request an http listener refuses with 429 is one `event=limited`
 * line at info, with the auth-server guide's tags (route, limit, key kind,
 * reason, Retry-After, client id, correlation id), never a password, and a
 * long wait flagged; and the HTTP fail2ban filter, run with the real
 * `fail2ban-regex` on the log of a real `portcullis run`, matches exactly
 * those refusals, each with its client's address.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { GatewayProcess } from "../../helpers/gateway-process.js";
import { curl, startUpstream, type Upstream } from "./gateway-helpers.js";
import { freePort } from "../../helpers/free-port.js";

const run = promisify(execFile);
const root = new URL("../../..", import.meta.url).pathname;
const FILTER = join(root, "deploy/fail2ban/filter.d/portcullis-http.conf");
const AUTH_FILTER = join(root, "deploy/fail2ban/filter.d/portcullis.conf");
const PASSWORD = "Sup3r-secret-pw";
const TOKEN = "http-refusal-test-token-0123456789";

function config(format: "logfmt" | "json", upstreamPort: number, adminPort: number): string {
  return `
[log]
format = "${format}"

[guard]
deny = ["127.0.0.9"]

[[listener]]
name = "api"
kind = "http"
bind = "127.0.0.1:0"
upstream = "http://127.0.0.1:${upstreamPort}"

[http]
lockout = { max_failures = 2, window = "15m", duration = "15m" }

[[http.route]]
name = "token"
match = "/token"
limit = { algorithm = "fixed_window", permit_limit = 3, window = "00:10:00", queue_limit = 0, key = { kind = "client_id", header = "x-client-id" } }

[[http.route]]
name = "short"
match = "/short"
limit = { algorithm = "fixed_window", permit_limit = 1, window = "00:01:00", queue_limit = 0, key = "ip" }

[[http.route]]
name = "login"
match = "/login"
methods = ["POST"]
limit = { algorithm = "fixed_window", permit_limit = 100, window = "00:01:00" }
lockout = { subject = "user", failure_statuses = [401] }

[admin]
enabled = true
bind = "127.0.0.1:${adminPort}"
token = "${TOKEN}"
`;
}

interface Run {
  gw: GatewayProcess;
  logFile: string;
  /** The address of each request that got 429, in order. */
  refused: string[];
  /** The statuses every request got. */
  statuses: number[];
  adminPort: number;
}

/** Starts `portcullis run`, drives a mix of allowed and refused requests at it, and writes its log to a file. */
async function driveGateway(dir: string, format: "logfmt" | "json", up: Upstream): Promise<Run> {
  const adminPort = await freePort();
  const file = join(dir, `gateway-${format}.toml`);
  await writeFile(file, config(format, up.port, adminPort));
  const gw = new GatewayProcess(file);
  await gw.waitFor(() => /listener api \(http\) up on 127\.0\.0\.1:\d+/.test(gw.stderr), "listener up", 30_000);
  await gw.waitFor(() => gw.stderr.includes("admin listener up"), "admin listener up", 30_000);
  const port = Number(/up on 127\.0\.0\.1:(\d+)/.exec(gw.stderr)![1]);
  const url = (p: string): string => `http://127.0.0.1:${port}${p}`;
  const refused: string[] = [];
  const statuses: number[] = [];
  const send = async (from: string, args: string[]): Promise<void> => {
    const r = await curl(["--interface", from, ...args]);
    statuses.push(r.status);
    if (r.status === 429) refused.push(from);
  };
  // Client app1 from 127.0.0.2: 3 pass, 2 refused (a 10-minute window: a long Retry-After). Its Basic password must never be logged.
  for (let i = 0; i < 5; i++) await send("127.0.0.2", ["-H", "x-client-id: app1", "-H", `x-request-id: req-${i}`, "-u", `app1:${PASSWORD}`, url("/token")]);
  // Client app2 from 127.0.0.3: within its limit.
  for (let i = 0; i < 3; i++) await send("127.0.0.3", ["-H", "x-client-id: app2", url("/token")]);
  // An IPv4 address refused on a short window: 1 passes, 2 refused.
  for (let i = 0; i < 3; i++) await send("127.0.0.4", [url("/short")]);
  // Two wrong passwords lock alice; the next try (right password, other address) is a 429 of the lockout.
  for (let i = 0; i < 2; i++) await send("127.0.0.5", ["--data", `username=alice&password=${PASSWORD}`, url("/login")]);
  await send("127.0.0.6", ["--data", "username=alice&password=right", url("/login")]);
  // A connection the guard refuses at accept is an event=limited line too, but not an HTTP refusal.
  await assert.rejects(curl(["--interface", "127.0.0.9", url("/token")]), /curl failed/);
  const marker = format === "json" ? '"event":"limited"' : " event=limited ";
  await gw.waitFor(() => gw.count(marker) >= refused.length + 1, "every refusal logged");
  const logFile = join(dir, `gateway-${format}.log`);
  await writeFile(logFile, gw.stdout);
  return { gw, logFile, refused, statuses, adminPort };
}

async function fail2banRegex(...args: string[]): Promise<string> {
  const { stdout } = await run("fail2ban-regex", args, { timeout: 30_000 });
  return stdout;
}

for (const format of ["logfmt", "json"] as const) {
  describe(`http refusals in the log (${format}), through portcullis run`, () => {
    let dir: string;
    let up: Upstream;
    let r: Run;

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "portcullis-http-refusals-"));
      up = await startUpstream();
      r = await driveGateway(dir, format, up);
    });
    after(async () => {
      r?.gw.child.kill("SIGTERM");
      await r?.gw.exit();
      await up.close();
      await rm(dir, { recursive: true, force: true });
    });

    const records = (): Array<Record<string, unknown>> =>
      r.gw.stdout
        .split("\n")
        .filter((l) => l.length > 0)
        .map((l) => (format === "json" ? (JSON.parse(l) as Record<string, unknown>) : logfmtRecord(l)));

    test("each 429 is one event=limited line at info with the guide's tags; nothing else about it", () => {
      assert.deepEqual(r.refused, ["127.0.0.2", "127.0.0.2", "127.0.0.4", "127.0.0.4", "127.0.0.6"]);
      const http = records().filter((x) => x.event === "limited" && x.route !== undefined);
      assert.equal(http.length, r.refused.length);
      assert.deepEqual(http.map((x) => x.remote_addr), r.refused);
      for (const x of http) assert.equal(x.level, "info");
      const first = http[0]!;
      assert.equal(first.listener, "api");
      assert.equal(first.route, "token");
      assert.equal(first.limiter, "token");
      assert.equal(first.key, "client_id");
      assert.equal(first.reason, "rate_limited");
      assert.equal(first.method, "GET");
      assert.equal(first.client_id, "app1");
      assert.equal(first.request_id, "req-3");
      // A 10-minute window: the wait is far above log.long_retry_after (120 s) and flagged.
      assert.ok(Number(first.retry_after_s) > 120, String(first.retry_after_s));
      assert.equal(String(first.long_retry_after), "true");
      const short = http[2]!;
      assert.deepEqual([short.route, short.key, short.reason], ["short", "ip", "rate_limited"]);
      assert.ok(Number(short.retry_after_s) >= 1 && Number(short.retry_after_s) <= 60, String(short.retry_after_s));
      assert.equal(short.long_retry_after, undefined);
      const locked = http[4]!;
      assert.deepEqual([locked.route, locked.limiter, locked.key, locked.reason, locked.user], ["login", "lockout", "subject", "locked_out", "alice"]);
      assert.equal(locked.retry_after_s, format === "json" ? 900 : "900");
      // Logged once: no warning about the same refusals (the one warning is the lock starting, a different event).
      assert.deepEqual(records().filter((x) => x.level === "warn").map((x) => x.msg), ["subject locked out"]);
      assert.equal(r.gw.count("request throttled"), 0);
      // Never a password, from a form or from Basic credentials.
      assert.ok(!r.gw.stdout.includes(PASSWORD), "a password reached the log");
      assert.ok(!r.gw.stderr.includes(PASSWORD), "a password reached stderr");
    });

    test("the long waits are counted in portcullis_long_retry_after_total{limiter=\"http\"} and each refusal in the HTTP counter", async () => {
      const res = await fetch(`http://127.0.0.1:${r.adminPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(10_000) });
      const text = await res.text();
      assert.match(text, /portcullis_long_retry_after_total\{limiter="http"\} 3\b/);
      assert.match(text, /portcullis_http_rejections_total\{route="token",limiter="token"\} 2\b/);
      assert.match(text, /portcullis_http_rejections_total\{route="short",limiter="short"\} 2\b/);
      assert.match(text, /portcullis_http_rejections_total\{route="login",limiter="lockout"\} 1\b/);
      // The refused clients are in the offender table, under the kind "http".
      const stats = (await (await fetch(`http://127.0.0.1:${r.adminPort}/v1/stats`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(10_000) })).json()) as Record<string, unknown>;
      const offenders = JSON.stringify(stats);
      assert.match(offenders, /127\.0\.0\.2/);
      assert.match(offenders, /"http"/);
    });

    test("fail2ban-regex with the HTTP filter matches exactly the refused requests, with their addresses", async () => {
      const hosts = (await fail2banRegex("-o", "ip", r.logFile, FILTER)).split("\n").filter((l) => l.length > 0);
      assert.deepEqual(hosts, r.refused);
      const summary = await fail2banRegex(r.logFile, FILTER);
      const m = /Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed/.exec(summary);
      assert.ok(m, summary);
      assert.equal(Number(m[3]), r.refused.length);
      // The guard's refusal at accept (127.0.0.9) is in the log but is not an HTTP refusal.
      assert.ok(r.gw.stdout.includes("127.0.0.9"));
      assert.ok(!hosts.includes("127.0.0.9"));
      // And the authentication filter does not read HTTP refusals as failed logins.
      const auth = (await fail2banRegex("-o", "ip", r.logFile, AUTH_FILTER)).split("\n").filter((l) => l.length > 0);
      assert.deepEqual(auth, []);
    });
  });
}

/** A logfmt line as a record (values unquoted; numbers stay text). */
function logfmtRecord(line: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const m of line.matchAll(/([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    const v = m[2]!;
    out[m[1]!] = v.startsWith('"') ? (JSON.parse(v) as string) : v;
  }
  return out;
}
