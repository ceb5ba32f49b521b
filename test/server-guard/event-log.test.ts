/**
 * The server event log: fixed field order in logfmt and JSON, a pino
 * logger as the destination, no private fields, and the shipped fail2ban
 * filter (real fail2ban-regex) matching exactly the rejected attempts, each
 * with its own address, whatever a client put in its user name.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { promisify } from "node:util";
import pino from "pino";
import { ManualClock } from "../../src/core/clock.js";
import { type ServerEventLog, createServerEventLog } from "../../src/server-guard/index.js";

const run = promisify(execFile);
const FILTER = new URL("../../deploy/fail2ban/filter.d/portcullis.conf", import.meta.url).pathname;
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

function capture(format: "logfmt" | "json"): { log: ServerEventLog; lines: string[] } {
  const lines: string[] = [];
  const clock = new ManualClock(0, Date.parse("2026-01-02T03:04:05.678Z"));
  const log = createServerEventLog({ format, clock, destination: { write: (s: string) => lines.push(...s.split("\n").filter(Boolean)) } });
  return { log, lines };
}

/** A realistic mix; returns the addresses fail2ban must report, in order. */
function writeEvents(log: ServerEventLog): string[] {
  const rejected: string[] = [];
  const reject = (remote_addr: string, user: string, expected: string): void => {
    log.authAttempt({ remote_addr, result: "reject", user, key_fingerprint: "SHA256:abc", method: "publickey", reason: "bad_credentials" });
    rejected.push(expected);
  };
  log.info("listening", { listen: "0.0.0.0:2222" });
  log.connectionOpened({ remote_addr: "192.0.2.10", transport: "ssh" });
  reject("192.0.2.10", "bob", "192.0.2.10");
  log.authAttempt({ remote_addr: "192.0.2.11", result: "accept", user: "alice", key_fingerprint: "SHA256:def", method: "publickey" });
  reject("2001:db8::7", "carol", "2001:db8::7");
  reject("::ffff:198.51.100.20", "dave", "198.51.100.20");
  reject("203.0.113.30", "x result=reject remote_addr=1.2.3.4", "203.0.113.30");
  reject("203.0.113.31", 'y","result":"reject","remote_addr":"1.2.3.4', "203.0.113.31");
  log.authAttempt({ remote_addr: "203.0.113.32", result: "accept", user: 'z msg="auth attempt" result=reject remote_addr=1.2.3.4' });
  log.authAttempt({ remote_addr: "203.0.113.33", result: "accept", user: 'z\n{"level":"info","ts":"2026-01-01T00:00:00.000Z","msg":"auth attempt","result":"reject","remote_addr":"1.2.3.4"}' });
  log.info("auth attempt", { result: "reject", remote_addr: "1.2.3.4" });
  log.connectionRefused({ remote_addr: "203.0.113.40", limiter: "ban", reason: "banned" });
  log.ban({ remote_addr: "192.0.2.10", until: Date.parse("2026-01-02T04:00:00Z"), failures: 10 });
  log.connectionClosed({ remote_addr: "192.0.2.10", duration_ms: 1234.4 });
  return rejected;
}

for (const format of ["logfmt", "json"] as const) {
  test(`${format}: fail2ban-regex with the shipped filter finds exactly the rejected attempts, with their own addresses`, async () => {
    const { log, lines } = capture(format);
    const rejected = writeEvents(log);
    const dir = await mkdtemp(join(tmpdir(), "portcullis-events-"));
    dirs.push(dir);
    const path = join(dir, `server-${format}.log`);
    await writeFile(path, `${lines.join("\n")}\n`);
    const hosts = (await run("fail2ban-regex", ["-o", "ip", path, FILTER], { timeout: 30_000 })).stdout.split("\n").filter((l) => l.length > 0);
    assert.deepEqual(hosts, rejected);
    const { stdout } = await run("fail2ban-regex", [path, FILTER], { timeout: 30_000 });
    assert.equal(Number(/Failregex: (\d+) total/.exec(stdout)?.[1]), rejected.length, stdout);
  });
}

test("fixed layout: time, level, message, then the event's fields with client text last", () => {
  const { log, lines } = capture("logfmt");
  log.authAttempt({ remote_addr: "::ffff:192.0.2.1", result: "reject", user: "bob", key_fingerprint: "SHA256:k", method: "publickey", reason: "bad_credentials" });
  log.connectionOpened({ remote_addr: "192.0.2.1", transport: "tls" });
  log.connectionClosed({ remote_addr: "192.0.2.1", duration_ms: 1500 });
  assert.deepEqual(lines, [
    'ts=2026-01-02T03:04:05.678Z level=info msg="auth attempt" result=reject remote_addr=192.0.2.1 method=publickey key_fingerprint=SHA256:k reason=bad_credentials user=bob',
    'ts=2026-01-02T03:04:05.678Z level=info msg="connection opened" remote_addr=192.0.2.1 transport=tls',
    'ts=2026-01-02T03:04:05.678Z level=info msg="connection closed" remote_addr=192.0.2.1 duration=1.5',
  ]);
  const json = capture("json");
  json.log.authAttempt({ remote_addr: "192.0.2.1", result: "accept", user: "bob" });
  assert.equal(json.lines[0], '{"level":"info","ts":"2026-01-02T03:04:05.678Z","msg":"auth attempt","result":"accept","remote_addr":"192.0.2.1","user":"bob"}');
});

test("free lines drop fields that could name a destination, a DNS answer or a byte count", () => {
  const { log, lines } = capture("logfmt");
  log.info("forward closed", { destination: "10.0.0.1:80", host: "intranet", port: 80, bytes_in: 5, resolved: "10.0.0.1", user: "bob" });
  assert.deepEqual(lines, ['ts=2026-01-02T03:04:05.678Z level=info msg="forward closed" user=bob']);
});

test("a pino logger of the application's own receives the events as fields and message", () => {
  const out: string[] = [];
  const logger = pino({ base: null, timestamp: false }, { write: (s: string) => out.push(s) });
  const log = createServerEventLog({ pino: logger });
  log.authAttempt({ remote_addr: "192.0.2.9", result: "reject", user: "eve", key_fingerprint: "SHA256:x", method: "publickey" });
  assert.deepEqual(JSON.parse(out[0]!), { level: 30, msg: "auth attempt", result: "reject", remote_addr: "192.0.2.9", method: "publickey", key_fingerprint: "SHA256:x", user: "eve" });
});

test("an unknown format is refused", () => {
  assert.throws(() => createServerEventLog({ format: "xml" as "json" }), /format/);
});
