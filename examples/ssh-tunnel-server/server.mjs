#!/usr/bin/env node
// An SSH tunnel server protected by Portcullis, on the ssh2 package:
// public-key authentication against an authorized_keys file and local port
// forwarding (ssh -L) only, no shell. Connections are capped per address,
// each connection gets a fixed number of authentication attempts, and an
// address that keeps failing is banned (refused at accept, live sessions cut).
//
//   ssh-keygen -t ed25519 -N "" -f host_key
//   node examples/ssh-tunnel-server/server.mjs --port 2222 --host-key host_key \
//        --authorized-keys ~/.ssh/authorized_keys --max-connections-per-ip 4
//   ssh -N -p 2222 -L 8080:intranet.example:80 tunnel@server
//
// One logfmt (or JSON) line per event on standard output, for fail2ban
// (deploy/fail2ban/): `connection opened`, `auth attempt` (with
// key_fingerprint=SHA256:... as `ssh-keygen -lf` prints it), `connection
// closed`. Never where a tunnel goes, what a name resolved to, or how many
// bytes moved. Walkthrough: docs/library.md, "An SSH tunnel server".
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { parseArgs } from "node:util";
import ssh2 from "ssh2";
import { createServerEventLog, createServerGuard } from "portcullis/server-guard";

const { Server, utils } = ssh2;

const USAGE = `usage: server.mjs --host-key FILE --authorized-keys FILE [--port 2222] [--bind 0.0.0.0]
  [--max-connections-per-ip N (0 = unlimited)] [--max-auth-attempts N (10)]
  [--ban-failures N (10)] [--ban-window SECONDS (60)] [--ban-duration SECONDS (600)] [--log-format logfmt|json]`;

function fail(message) {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function options(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        port: { type: "string", default: "2222" },
        bind: { type: "string", default: "0.0.0.0" },
        "host-key": { type: "string" },
        "authorized-keys": { type: "string" },
        "max-connections-per-ip": { type: "string", default: "0" },
        "max-auth-attempts": { type: "string", default: "10" },
        "ban-failures": { type: "string", default: "10" },
        "ban-window": { type: "string", default: "60" },
        "ban-duration": { type: "string", default: "600" },
        "log-format": { type: "string", default: "logfmt" },
      },
    }));
  } catch (err) {
    fail(err.message);
  }
  const int = (name, min) => {
    const v = Number(values[name]);
    if (!Number.isInteger(v) || v < min) fail(`--${name}: expected an integer >= ${min}, got ${JSON.stringify(values[name])}`);
    return v;
  };
  if (values["host-key"] === undefined) fail("--host-key is required");
  if (values["authorized-keys"] === undefined) fail("--authorized-keys is required");
  if (values["log-format"] !== "logfmt" && values["log-format"] !== "json") fail("--log-format: logfmt or json");
  return {
    port: int("port", 0),
    bind: values.bind,
    hostKey: values["host-key"],
    authorizedKeys: values["authorized-keys"],
    maxConnectionsPerIp: int("max-connections-per-ip", 0),
    maxAuthAttempts: int("max-auth-attempts", 1),
    banFailures: int("ban-failures", 1),
    banWindowMs: int("ban-window", 1) * 1000,
    banDurationMs: int("ban-duration", 1) * 1000,
    logFormat: values["log-format"],
  };
}

/** SHA256:<base64 without padding> of the key's wire form, as `ssh-keygen -lf` prints it. */
function fingerprint(blob) {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** The keys of an authorized_keys file (options before the key type are skipped). */
function readAuthorizedKeys(path) {
  const keys = [];
  for (const raw of readFileSync(path, "utf8").split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const start = line.search(/(?:^|\s)(ssh-|ecdsa-|sk-)/);
    const key = utils.parseKey(start <= 0 ? line : line.slice(start).trim());
    if (key instanceof Error) continue;
    keys.push(Array.isArray(key) ? key[0] : key);
  }
  return keys;
}

function readFile(path, what) {
  try {
    return readFileSync(path);
  } catch (err) {
    fail(`${what}: ${err.code ?? err.message}`);
  }
}

const o = options(process.argv.slice(2));
const hostKey = readFile(o.hostKey, "--host-key");
const parsedHostKey = utils.parseKey(hostKey);
if (parsedHostKey instanceof Error || (Array.isArray(parsedHostKey) ? parsedHostKey[0] : parsedHostKey).isPrivateKey() !== true) {
  fail("--host-key: not an unencrypted private key (make one with ssh-keygen -t ed25519 -N \"\" -f host_key)");
}
readFile(o.authorizedKeys, "--authorized-keys");
const authorized = readAuthorizedKeys(o.authorizedKeys);
const log = createServerEventLog({ format: o.logFormat });
const guard = createServerGuard({
  maxConnectionsPerIp: o.maxConnectionsPerIp,
  maxAuthAttempts: o.maxAuthAttempts,
  ban: { failures: o.banFailures, windowMs: o.banWindowMs, durationMs: o.banDurationMs },
  log,
});

const ssh = new Server({ hostKeys: [hostKey] });

ssh.on("connection", (client, info) => {
  const conn = guard.connectionOf(info.ip, info.port);
  if (conn === undefined) {
    // Closed (or cut by a ban) before its SSH greeting was read.
    client.end();
    return;
  }
  // A ban or the last failed attempt ends the session with an SSH disconnect.
  conn.setCloser(() => client.end());
  client.on("error", () => {});
  client.on("authentication", (ctx) => void authenticate(conn, ctx));
  client.on("ready", () => {
    client.on("tcpip", (accept, reject, dest) => forward(accept, reject, dest));
    // A tunnel server: no shell, no exec, no subsystem.
    client.on("session", (_accept, reject) => reject());
  });
});

async function authenticate(conn, ctx) {
  // The connection is being cut after its last attempt: nothing more is counted.
  if (conn.authFailures >= guard.maxAuthAttempts) return ctx.reject();
  if (ctx.method === "none") return ctx.reject(["publickey"]);
  const user = ctx.username;
  const keyFingerprint = ctx.method === "publickey" ? fingerprint(ctx.key.data) : undefined;
  const gate = await conn.authCheck(user);
  if (!gate.allowed && gate.reason === "backoff") {
    // Backing off: the answer waits, which is what slows a brute-forcer down.
    await new Promise((r) => setTimeout(r, gate.retryAfterMs));
  } else if (!gate.allowed) {
    const v = await conn.authFailed({ user, keyFingerprint, method: ctx.method, reason: gate.reason });
    return v.disconnect ? undefined : ctx.reject(["publickey"]);
  }
  if (ctx.method !== "publickey") return failed(conn, ctx, { user, method: ctx.method });
  const key = authorized.find((k) => k.getPublicSSH().equals(ctx.key.data));
  if (key === undefined) return failed(conn, ctx, { user, keyFingerprint, method: "publickey" });
  // The client asks whether this key would do, before signing with it: yes, and it is not an attempt yet.
  if (ctx.signature === undefined) return ctx.accept();
  if (key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) {
    return failed(conn, ctx, { user, keyFingerprint, method: "publickey", reason: "bad_signature" });
  }
  await conn.authSucceeded({ user, keyFingerprint, method: "publickey" });
  ctx.accept();
}

async function failed(conn, ctx, attempt) {
  const v = await conn.authFailed(attempt);
  // On the last attempt the guard ends the session with a disconnect, without another failure message.
  if (!v.disconnect) ctx.reject(["publickey"]);
}

function forward(accept, reject, dest) {
  const upstream = connect({ host: dest.destIP, port: dest.destPort });
  let channel;
  // Where a tunnel goes is the user's business: a failure closes the channel and is not logged.
  upstream.once("error", () => {
    if (channel === undefined) reject();
    else channel.destroy();
  });
  upstream.once("connect", () => {
    channel = accept();
    channel.on("error", () => upstream.destroy());
    upstream.pipe(channel).pipe(upstream);
  });
}

const tcp = createServer((socket) => ssh.injectSocket(socket));
guard.protect(tcp, { transport: "ssh" });
tcp.on("error", (err) => {
  process.stderr.write(`listen: ${err.code ?? err.message}\n`);
  process.exit(1);
});
tcp.listen(o.port, o.bind, () => {
  log.info("listening", { listen: `${o.bind}:${tcp.address().port}` });
});

const stop = () => {
  tcp.close();
  guard.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
