/**
 * IP-churn flood against a real `portcullis run` (as installed: compiled,
 * no TypeScript loader): `addresses` clients from 127.64.0.0/10, each on its
 * own source address, fail `failures` logins on a connect listener with
 * Basic auth. Reports what the attack achieved (offenders served again
 * afterwards) and the gateway's resident memory: idle, peak, once the
 * failed-login table is full, at the end, and after `settleMs` of quiet.
 * Bounded: every connection has a deadline and the whole run `timeLimitMs`.
 *
 * `trackedEntryBytes` measures the memory of one failed-login record in
 * process (docs/memory.md).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { hashPassword } from "../../src/gateway/identity/passwords.js";
import { PenaltyBox } from "../../src/limiter/penalty-box.js";
import { CLI } from "../../test/helpers/cli.js";

export interface IpChurnOptions {
  /** Distinct source addresses (default 100,000; at most the 4 million of 127.64.0.0/10). */
  addresses?: number;
  /** Failed logins per address (default 3), with ban.failures set to the same. */
  failures?: number;
  /** guard.max_tracked (default: the gateway's default, 65,536). */
  maxTracked?: number;
  /** Clients at a time (default 64). */
  concurrency?: number;
  /** ban.duration and ban.max_duration (default: the gateway's, 10m and 24h); records expire this plus twice ban.window after their last failure. */
  banDuration?: string;
  /** ban.window when banDuration is given (default 10s). */
  banWindow?: string;
  /** Quiet time after the flood before the last memory sample (default 0). */
  settleMs?: number;
  /** Whole run (default 30 minutes). */
  timeLimitMs?: number;
  /** Every how many addresses to re-check, after the flood, that an offender is refused (default 97). */
  recheckEvery?: number;
}

export interface IpChurnResult {
  addresses: number;
  /** Answers to failed logins received (a ban may close a connection before its last answer). */
  failedLogins: number;
  /** Connections closed with no answer: refused at accept (banned, or the prefix banned), or closed by the ban their own failure started. */
  closedUnanswered: number;
  /** Offenders re-checked afterwards, and how many of them were served again. */
  rechecked: number;
  servedAgain: number;
  seconds: number;
  /** Flood connections (one per address) per second of the flood, re-checks excluded. */
  connectionsPerSecond: number;
  rssIdleMiB: number;
  rssPeakMiB: number;
  /** RSS when the failed-login table had just filled, and at the end of the flood. */
  rssFullMiB: number;
  rssEndMiB: number;
  rssSettledMiB: number;
}

const SCRYPT = { N: 1024, r: 8, p: 1 };

function address(n: number): string {
  const v = (127 << 24) + (64 << 16) + 1 + n;
  return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

function rssMiB(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
  } catch {
    return NaN;
  }
}

function header(user: string, password: string): string {
  return `CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nProxy-Authorization: Basic ${Buffer.from(`${user}:${password}`).toString("base64")}\r\n\r\n`;
}

/** One client: up to `failures` wrong passwords on one connection. Resolves how it ended; never rejects; bounded by `deadlineMs`. */
function client(port: number, local: string, failures: number, deadlineMs: number, password = "wrong"): Promise<{ answers: number; refused: boolean; served: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1", localAddress: local });
    let text = "";
    let answers = 0;
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ answers, refused: answers === 0 && !text.startsWith("HTTP/1.1 200"), served: text.startsWith("HTTP/1.1 200") || text.startsWith("HTTP/1.1 502") });
    };
    const timer = setTimeout(done, deadlineMs);
    s.on("error", done);
    s.on("close", done);
    s.on("connect", () => s.write(header("alice", password)));
    s.on("data", (d: Buffer) => {
      text += d.toString("latin1");
      const n = text.split("\r\n\r\n").length - 1;
      if (n > answers) {
        answers = n;
        if (!text.startsWith("HTTP/1.1 407")) return done();
        if (answers < failures) s.write(header("alice", `${password}-${answers}`));
      }
    });
  });
}

export async function ipChurn(o: IpChurnOptions = {}): Promise<IpChurnResult> {
  const n = o.addresses ?? 100_000;
  const failures = o.failures ?? 3;
  const concurrency = o.concurrency ?? 64;
  const deadline = Date.now() + (o.timeLimitMs ?? 30 * 60_000);
  const dir = mkdtempSync(join(tmpdir(), "portcullis-churn-"));
  const file = join(dir, "gateway.toml");
  const lines = [
    "[log]",
    'level = "warn"',
    "[users]",
    `alice = "${await hashPassword("s3cret", SCRYPT)}"`,
    "[guard]",
    "max_auth_attempts = " + String(failures),
    o.banDuration === undefined
      ? `ban = { failures = ${failures}, backoff_after = ${failures + 1} }`
      : `ban = { failures = ${failures}, backoff_after = ${failures + 1}, window = "${o.banWindow ?? "10s"}", duration = "${o.banDuration}", max_duration = "${o.banDuration}" }`,
    ...(o.maxTracked !== undefined ? [`max_tracked = ${o.maxTracked}`] : []),
    "[[listener]]",
    'name = "egress"',
    'kind = "connect"',
    'bind = "127.0.0.1:0"',
    "",
  ];
  writeFileSync(file, lines.join("\n"));
  const child = spawn(process.execPath, [CLI, "run", "-c", file], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const started = Date.now();
  try {
    let port = 0;
    while (port === 0) {
      const m = /listener egress \(connect\) up on 127\.0\.0\.1:(\d+)/.exec(stderr);
      if (m) port = Number(m[1]);
      else if (child.exitCode !== null || Date.now() > deadline) throw new Error(`gateway did not start: ${stderr}`);
      else await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 1000));
    const pid = child.pid!;
    const rssIdleMiB = rssMiB(pid);
    let rssPeakMiB = rssIdleMiB;
    const sampler = setInterval(() => (rssPeakMiB = Math.max(rssPeakMiB, rssMiB(pid))), 250);
    const tracked = o.maxTracked ?? 65_536;
    let rssFullMiB = NaN;
    let failedLogins = 0;
    let closedUnanswered = 0;
    let next = 0;
    const floodStarted = Date.now();
    const worker = async (): Promise<void> => {
      while (next < n && Date.now() < deadline) {
        const i = next++;
        if (i === tracked) rssFullMiB = rssMiB(pid);
        const r = await client(port, address(i), failures, 30_000);
        failedLogins += r.answers;
        if (r.refused) closedUnanswered++;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, () => worker()));
    const connectionsPerSecond = n / ((Date.now() - floodStarted) / 1000);
    const rssEndMiB = rssMiB(pid);
    // Offenders must stay refused, even with the right password.
    const every = o.recheckEvery ?? 97;
    let rechecked = 0;
    let servedAgain = 0;
    for (let i = 0; i < n && Date.now() < deadline; i += every) {
      rechecked++;
      if ((await client(port, address(i), 1, 30_000, "s3cret")).served) servedAgain++;
    }
    const seconds = (Date.now() - started) / 1000;
    if (o.settleMs) await new Promise((r) => setTimeout(r, o.settleMs));
    clearInterval(sampler);
    return { addresses: n, failedLogins, closedUnanswered, rechecked, servedAgain, seconds, connectionsPerSecond, rssIdleMiB, rssPeakMiB, rssFullMiB, rssEndMiB, rssSettledMiB: rssMiB(pid) };
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 500));
    if (child.exitCode === null) child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Heap bytes per failed-login record: `entries` keys recorded in a penalty box, measured after full collections. */
export function trackedEntryBytes(entries = 65_536): number {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const keys = Array.from({ length: entries }, (_, i) => address(i));
  gc();
  const before = process.memoryUsage();
  const box = new PenaltyBox({ maxKeys: entries, banFailures: 3 });
  for (const k of keys) box.recordFailure(k);
  gc();
  const after = process.memoryUsage();
  if (box.size !== entries) throw new Error("box did not hold every key");
  return (after.heapUsed - before.heapUsed + (after.arrayBuffers - before.arrayBuffers)) / entries;
}
