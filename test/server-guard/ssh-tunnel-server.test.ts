/**
 * The SSH tunnel server example driven by the real OpenSSH client: a local
 * forward carries bytes both ways; the per-address cap refuses a third
 * session and admits the next once one closes; a connection offering four
 * wrong keys is cut after the third failure; after the ban threshold the
 * address is refused at accept. The log has the documented fields, the key
 * fingerprints `ssh-keygen -lf` prints, never the forward's target, and the
 * shipped fail2ban filter (real fail2ban-regex) counts exactly the failures.
 *
 * One server for the file; each case uses its own client address (ssh -b).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { readFile, rm, writeFile } from "node:fs/promises";
import { type AddressInfo, type Server, connect, createServer } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { type KeyPair, type SshRun, TunnelServer, exitOf, makeKey, ssh, stopSsh, tempDir, WAIT_MS } from "./ssh-harness.js";
import { waitUntil } from "../helpers/wait.js";
import { freePort } from "../helpers/free-port.js";

const run = promisify(execFile);
const FILTER = new URL("../../deploy/fail2ban/filter.d/portcullis.conf", import.meta.url).pathname;
/** Where the forward goes: an address no client uses, so it is recognisable in a log line. */
const TARGET_HOST = "127.0.0.77";

let dir: string;
let server: TunnelServer;
let good: KeyPair;
let bad: KeyPair[];
let echo: Server;
let echoPort: number;
const sessions: SshRun[] = [];

before(async () => {
  dir = await tempDir();
  const host = await makeKey(dir, "host_key");
  good = await makeKey(dir, "good");
  bad = await Promise.all([1, 2, 3, 4].map((i) => makeKey(dir, `bad${i}`)));
  const authorized = join(dir, "authorized_keys");
  await writeFile(authorized, `# the one key allowed in\nno-pty ${await readFile(`${good.path}.pub`, "utf8")}`);
  echo = createServer((s) => {
    s.on("error", () => {});
    s.pipe(s);
  });
  echo.listen(0, TARGET_HOST);
  await once(echo, "listening");
  echoPort = (echo.address() as AddressInfo).port;
  server = await TunnelServer.start([
    "--host-key",
    host.path,
    "--authorized-keys",
    authorized,
    "--max-connections-per-ip",
    "2",
    "--max-auth-attempts",
    "3",
    "--ban-failures",
    "6",
  ]);
});

after(async () => {
  await Promise.all(sessions.map((s) => stopSsh(s).catch(() => {})));
  await server?.stop();
  echo?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** An ssh -N session with the good key, once the server has accepted it. */
async function session(source: string, extra: string[] = []): Promise<SshRun> {
  const before = server.events("auth attempt", source).filter((l) => l.includes("result=accept")).length;
  const s = ssh(server.port, source, [good], ["-N", ...extra]);
  sessions.push(s);
  await waitUntil(() => server.events("auth attempt", source).filter((l) => l.includes("result=accept")).length > before || s.child.exitCode !== null, { timeoutMs: WAIT_MS, intervalMs: 20, message: "the session's authentication" });
  assert.equal(s.child.exitCode, null, `ssh exited: ${s.stderr()}`);
  return s;
}

test("a local forward (ssh -N -L) carries bytes both ways", async () => {
  const local = await freePort();
  const s = await session("127.0.0.30", ["-o", "ExitOnForwardFailure=yes", "-L", `127.0.0.1:${local}:${TARGET_HOST}:${echoPort}`]);
  const payload = randomBytes(256 * 1024);
  // ssh listens on the local port once the session is up; retry the connect until it does (bounded).
  const received = await new Promise<Buffer>((resolve, reject) => {
    const deadline = Date.now() + 10_000;
    const attempt = (): void => {
      const c = connect({ host: "127.0.0.1", port: local });
      const chunks: Buffer[] = [];
      let got = 0;
      c.on("connect", () => c.write(payload));
      c.on("data", (d: Buffer) => {
        chunks.push(d);
        got += d.length;
        if (got >= payload.length) {
          c.destroy();
          resolve(Buffer.concat(chunks));
        }
      });
      c.on("error", () => {
        if (Date.now() > deadline) reject(new Error("the forward never opened"));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
  assert.ok(received.equals(payload), "the echo came back byte for byte");
  await stopSsh(s);
  await waitUntil(() => server.events("connection closed", "127.0.0.30").length === 1, { timeoutMs: WAIT_MS, intervalMs: 20, message: "the session's close line" });
});

test("--max-connections-per-ip 2: a third concurrent session from one address is refused; after one closes the next is accepted", async () => {
  const src = "127.0.0.31";
  const a = await session(src);
  const b = await session(src);
  const third = ssh(server.port, src, [good], ["-N"]);
  sessions.push(third);
  assert.equal(await exitOf(third), 255, "ssh fails to connect");
  assert.equal(server.events("connection refused", src).filter((l) => l.includes("limiter=max_connections_per_ip")).length, 1);
  assert.equal(server.events("connection opened", src).length, 2, "the refused connection never opened");
  await stopSsh(a);
  await waitUntil(() => server.events("connection closed", src).length === 1, { timeoutMs: WAIT_MS, intervalMs: 20, message: "the first session's close" });
  const d = await session(src);
  assert.equal(server.events("auth attempt", src).filter((l) => l.includes("result=accept")).length, 3);
  await Promise.all([stopSsh(b), stopSsh(d)]);
});

test("--max-auth-attempts 3: four wrong keys on one connection, cut after the third failure", async () => {
  const src = "127.0.0.32";
  const r = ssh(server.port, src, bad, ["-N"]);
  sessions.push(r);
  assert.equal(await exitOf(r), 255);
  const rejects = server.events("auth attempt", src).filter((l) => l.includes("result=reject"));
  assert.equal(rejects.length, 3, rejects.join("\n"));
  // Each line names the key offered, exactly as ssh-keygen -lf prints it; the fourth key was never tried.
  for (let i = 0; i < 3; i++) assert.ok(rejects[i]!.includes(` key_fingerprint=${bad[i]!.fingerprint} `), rejects[i]!);
  assert.ok(!server.lines.some((l) => l.includes(bad[3]!.fingerprint)));
  await waitUntil(() => server.events("connection closed", src).find((l) => l.includes("reason=max_auth_attempts")), { timeoutMs: WAIT_MS, intervalMs: 20, message: "the cut connection's close line" });
});

test("after the ban threshold the address is refused at accept, even with a good key", async () => {
  const src = "127.0.0.33";
  for (let i = 0; i < 2; i++) {
    const r = ssh(server.port, src, bad, ["-N"]);
    sessions.push(r);
    assert.equal(await exitOf(r), 255);
  }
  await waitUntil(() => server.events("ban", src).length === 1, { timeoutMs: WAIT_MS, intervalMs: 20, message: "the ban line" });
  assert.equal(server.events("auth attempt", src).length, 6);
  const opened = server.events("connection opened", src).length;
  const r = ssh(server.port, src, [good], ["-N"]);
  sessions.push(r);
  assert.equal(await exitOf(r), 255);
  assert.equal(server.events("connection opened", src).length, opened, "no SSH connection opened for the banned address");
  assert.equal(server.events("connection refused", src).filter((l) => l.includes("limiter=ban")).length, 1);
  // Another address still gets in.
  await stopSsh(await session("127.0.0.34"));
});

test("log lines carry the documented fields, the fingerprint ssh-keygen prints, and never the forward's target", async () => {
  const accept = server.events("auth attempt", "127.0.0.30").find((l) => l.includes("result=accept"))!;
  assert.match(accept, /^ts=\S+ level=info msg="auth attempt" result=accept remote_addr=127\.0\.0\.30 method=publickey key_fingerprint=SHA256:\S+ user=tunnel$/);
  assert.ok(accept.includes(` key_fingerprint=${good.fingerprint} `), `${accept} vs ${good.fingerprint}`);
  const reject = server.events("auth attempt", "127.0.0.32")[0]!;
  assert.match(reject, /^ts=\S+ level=info msg="auth attempt" result=reject remote_addr=127\.0\.0\.32 method=publickey key_fingerprint=SHA256:\S+ reason=bad_credentials user=tunnel$/);
  assert.match(server.events("connection opened", "127.0.0.30")[0]!, /^ts=\S+ level=info msg="connection opened" remote_addr=127\.0\.0\.30 transport=ssh$/);
  assert.match(server.events("connection closed", "127.0.0.30")[0]!, /^ts=\S+ level=info msg="connection closed" remote_addr=127\.0\.0\.30 duration=\d+(\.\d+)?$/);
  // The target of -L appears in no line, at any level, on either stream (nor do byte counts or DNS fields).
  const leaks = server.lines.filter((l) => l.includes(TARGET_HOST) || new RegExp(`\\b${echoPort}\\b`).test(l.replace(/^ts=\S+/, "")) || /bytes|dns|dest/i.test(l));
  assert.deepEqual(leaks, []);
});

test("fail2ban-regex with the shipped filter counts exactly the failed attempts", async () => {
  const failures = server.lines.filter((l) => l.includes('msg="auth attempt" result=reject')).length;
  assert.equal(failures, 9, "three on the cut connection, six before the ban");
  const log = await server.logFile(dir);
  const { stdout } = await run("fail2ban-regex", [log, FILTER], { timeout: 30_000 });
  const m = /Failregex: (\d+) total/.exec(stdout);
  assert.ok(m, stdout);
  assert.equal(Number(m[1]), failures);
});

test("bad flags exit 2 with one line naming the flag, no stack trace", async () => {
  const server = new URL("../../examples/ssh-tunnel-server/server.mjs", import.meta.url).pathname;
  const cases: Array<[string[], RegExp]> = [
    [["--authorized-keys", "/dev/null"], /--host-key is required/],
    [["--host-key", "/dev/null", "--authorized-keys", "/dev/null", "--max-connections-per-ip=-1"], /--max-connections-per-ip: expected an integer >= 0/],
    [["--host-key", "/dev/null", "--authorized-keys", "/dev/null"], /--host-key: not an unencrypted private key/],
  ];
  for (const [args, message] of cases) {
    const r = await run(process.execPath, [server, ...args], { timeout: 10_000 }).then(
      () => assert.fail(`${args.join(" ")} was accepted`),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  }
});
