/**
 * The shipped Fail2Ban filter against log files written by the gateway
 * logger, checked with the real fail2ban-regex: every rejected
 * authentication matches, with its own address, and nothing else does.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { closeSync, openSync, writeSync } from "node:fs";
import { copyFile, cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, describe, test } from "node:test";
import { promisify } from "node:util";
import { createGatewayLogger, type GatewayLogger } from "../../../src/gateway/log/logger.js";

const run = promisify(execFile);
const FILTER = new URL("../../../deploy/fail2ban/filter.d/portcullis.conf", import.meta.url).pathname;
const JAIL = new URL("../../../deploy/fail2ban/jail.d/portcullis.conf", import.meta.url).pathname;

/** Writes a realistic mix of events; returns the addresses of the rejections, in order. */
function writeEvents(log: GatewayLogger): string[] {
  const rejected: string[] = [];
  const reject = (remote_addr: string, user: string | undefined, expected: string, reason = "bad_password"): void => {
    log.auth({ remote_addr, user, result: "reject", reason, listener: "egress" });
    rejected.push(expected);
  };
  log.info("listening", { listener: "egress", bind: "127.0.0.1:8080" });
  log.connOpen({ remote_addr: "192.0.2.10", transport: "tcp", listener: "egress" });
  reject("192.0.2.10", "bob", "192.0.2.10");
  reject("192.0.2.10", "bob", "192.0.2.10");
  log.auth({ remote_addr: "192.0.2.11", user: "alice", result: "accept", listener: "egress" });
  reject("2001:db8::7", "carol", "2001:db8::7");
  reject("::ffff:198.51.100.20", undefined, "198.51.100.20", "no client certificate");
  reject("fe80::1:2:3:4", "", "fe80::1:2:3:4");
  // Client-chosen user names that try to make a line match, or match another address.
  reject("203.0.113.30", "x result=reject remote_addr=1.2.3.4", "203.0.113.30");
  reject("203.0.113.31", 'x" result=reject remote_addr=1.2.3.4 "', "203.0.113.31");
  log.auth({ remote_addr: "203.0.113.32", user: "x result=reject remote_addr=1.2.3.4", result: "accept", listener: "egress" });
  log.auth({ remote_addr: "203.0.113.33", user: 'y","result":"reject","remote_addr":"1.2.3.4', result: "accept", listener: "egress" });
  log.auth({
    remote_addr: "203.0.113.34",
    user: "z\nts=2026-01-01T00:00:00.000Z level=info event=auth result=reject remote_addr=1.2.3.4\n",
    result: "accept",
    listener: "egress",
  });
  log.auth({
    remote_addr: "203.0.113.35",
    user: 'z\n{"level":"info","ts":"2026-01-01T00:00:00.000Z","event":"auth","result":"reject","remote_addr":"1.2.3.4"}',
    result: "accept",
    listener: "egress",
  });
  // Other events that mention rejections must not count as failures.
  log.limited({ remote_addr: "203.0.113.40", limiter: "auth", reason: "result=reject", listener: "egress" });
  log.ban({ remote_addr: "192.0.2.10", until: Date.now() + 600_000, failures: 10 });
  log.unban({ remote_addr: "192.0.2.10", reason: "expired" });
  log.info("result=reject remote_addr=1.2.3.4", { event: "auth", result: "reject", remote_addr: "1.2.3.4" });
  log.warn("event=auth result=reject remote_addr=1.2.3.4");
  log.audit({ remote_addr: "203.0.113.41", user: "alice", destination: "result=reject", listener: "egress" });
  log.connClose({ remote_addr: "192.0.2.10", duration_ms: 12, listener: "egress" });
  reject("192.0.2.12", "dave", "192.0.2.12");
  return rejected;
}

const tempDirs: string[] = [];
after(() => Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true }))));

async function logFile(format: "json" | "logfmt"): Promise<{ path: string; rejected: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), "portcullis-f2b-"));
  tempDirs.push(dir);
  const path = join(dir, `gateway-${format}.log`);
  const fd = openSync(path, "w");
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      writeSync(fd, chunk);
      cb();
    },
  });
  const rejected = writeEvents(createGatewayLogger({ format, destination, auditDestinations: true }));
  closeSync(fd);
  return { path, rejected };
}

async function fail2banRegex(...args: string[]): Promise<string> {
  const { stdout } = await run("fail2ban-regex", args, { timeout: 30_000 });
  return stdout;
}

for (const format of ["logfmt", "json"] as const) {
  describe(`fail2ban filter (${format})`, () => {
    test("matches exactly the rejections, capturing each one's address", async () => {
      const { path, rejected } = await logFile(format);
      const hosts = (await fail2banRegex("-o", "ip", path, FILTER)).split("\n").filter((l) => l.length > 0);
      assert.deepEqual(hosts, rejected);
      assert.ok(!hosts.includes("1.2.3.4"));
      const summary = await fail2banRegex(path, FILTER);
      const m = /Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed/.exec(summary);
      assert.ok(m, summary);
      assert.equal(Number(m[3]), rejected.length);
      // Every line carries a date the filter's datepattern understands.
      assert.match(summary, /Date template hits:[\s\S]*\[(\d+)\]/);
    });
  });
}

test("fail2ban-client accepts the jail and filter as installed", async () => {
  // A copy of the system's configuration with only our jail in jail.d.
  const dir = await mkdtemp(join(tmpdir(), "portcullis-f2b-conf-"));
  tempDirs.push(dir);
  await cp("/etc/fail2ban", dir, { recursive: true });
  await rm(join(dir, "jail.d"), { recursive: true, force: true });
  await mkdir(join(dir, "jail.d"));
  await copyFile(FILTER, join(dir, "filter.d", "portcullis.conf"));
  await copyFile(JAIL, join(dir, "jail.d", "portcullis.conf"));
  const { path } = await logFile("logfmt");
  await writeFile(join(dir, "jail.d", "portcullis.local"), `[portcullis]\nlogpath = ${path}\n`);
  const checked = await run("fail2ban-client", ["-c", dir, "-t"], { timeout: 30_000 });
  assert.match(checked.stdout, /configuration test is successful/);
  const dump = (await run("fail2ban-client", ["-c", dir, "-d"], { timeout: 30_000 })).stdout;
  assert.match(dump, /\['add', 'portcullis', 'auto'\]/);
  assert.match(dump, /\['set', 'portcullis', 'usedns', 'no'\]/);
  assert.match(dump, /\['multi-set', 'portcullis', 'addfailregex', \['\^ level=info event=auth result=reject/);
  assert.match(dump, /\['start', 'portcullis'\]/);
});
