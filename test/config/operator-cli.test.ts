/**
 * The configuration as an operator meets it, through the real CLI: a
 * misspelt key gets a did-you-mean; relative paths in a file resolve from
 * the file's folder; check-config refuses everything run refuses at start
 * (with the same line, exit 2); `bans -c FILE` reaches the admin listener
 * the file configures.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { runCli } from "../helpers/cli.js";
import { GatewayProcess } from "../helpers/gateway-process.js";
import { makeTestPki, type TestPki } from "../helpers/certs.js";
import { withTimeout } from "../gateway/fixtures.js";
import { freePort } from "../helpers/free-port.js";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CLI in `cwd` with a clean environment: no admin token, URL or overrides leak in from the shell. */
function cli(args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return runCli(args, { cwd: o.cwd ?? tmpdir(), env: { PATH: process.env.PATH, HOME: process.env.HOME, ...o.env } });
}

const LISTENER = '[[listener]]\nname = "egress"\nkind = "connect"\nbind = "127.0.0.1:0"\n';
const TOKEN = "operator-token-0123456789";

describe("operator configuration UX", () => {
  let dir: string;
  let pki: TestPki;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "portcullis-ux-"));
    // Certificates in a folder next to the configuration files, named relatively from them.
    await mkdir(join(dir, "conf", "certs"), { recursive: true });
    pki = await makeTestPki(join(dir, "conf", "certs"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const file = async (name: string, text: string): Promise<string> => {
    const p = join(dir, name);
    await mkdir(join(p, ".."), { recursive: true });
    await writeFile(p, text);
    return p;
  };

  test("an unknown key names the key it most likely meant, at any depth; a key like none gets no guess", async () => {
    const f = await file(
      "typos.toml",
      `gaurd = { max_auth_attempts = 3 }\n[log]\nformt = "json"\n[guard]\nmax_conection_per_ip = 3\ncolour = "red"\nban = { failurs = 3 }\n${LISTENER}tls = { cert = "a.pem", key = "b.pem", clientca = "c.pem" }\n`,
    );
    const r = await cli(["check-config", "-c", f]);
    assert.equal(r.code, 2);
    const lines = new Set(r.stderr.trim().split("\n"));
    for (const want of [
      'gaurd: unknown key (did you mean "guard"?)',
      'log.formt: unknown key (did you mean "format"?)',
      'guard.max_conection_per_ip: unknown key (did you mean "max_connections_per_ip"?)',
      'guard.ban.failurs: unknown key (did you mean "failures"?)',
      'listener[0].tls.clientca: unknown key (did you mean "client_ca"?)',
      "guard.colour: unknown key",
    ]) {
      assert.ok(lines.has(want), `missing line ${JSON.stringify(want)} in:\n${r.stderr}`);
    }
  });

  test("relative paths resolve from the configuration file's folder, wherever the command runs", async () => {
    const f = await file("conf/tls.toml", `${LISTENER}tls = { cert = "certs/server.crt", key = "./certs/server.key", client_ca = "certs/ca.crt" }\n`);
    const elsewhere = await mkdtemp(join(tmpdir(), "portcullis-cwd-"));
    try {
      const r = await cli(["check-config", "-c", f, "--json"], { cwd: elsewhere });
      assert.equal(r.code, 0, r.stderr);
      const eff = JSON.parse(r.stdout) as { listener: Array<{ tls: Record<string, string> }> };
      assert.deepEqual(
        [eff.listener[0]!.tls.cert, eff.listener[0]!.tls.key, eff.listener[0]!.tls.client_ca],
        [pki.serverCertPath, pki.serverKeyPath, pki.caCertPath],
        "check-config prints the paths it will read",
      );
      // -c FILE given relatively: the paths inside still resolve from the file's folder (from this cwd, "certs/..." would not exist).
      const relative = await cli(["check-config", "-c", "../tls.toml"], { cwd: join(dir, "conf", "certs") });
      assert.equal(relative.code, 0, relative.stderr);
      // A path given in the environment is a command-line path: from the working directory.
      const env = await cli(["check-config", "-c", f, "--json"], { cwd: pki.dir, env: { PORTCULLIS__LISTENER__0__TLS__CERT: "server.crt" } });
      assert.equal(env.code, 0, env.stderr);
      assert.equal((JSON.parse(env.stdout) as { listener: Array<{ tls: { cert: string } }> }).listener[0]!.tls.cert, "server.crt");
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
    // The real gateway, started from the repository's folder, serves TLS with the files named from the config's folder.
    const gw = new GatewayProcess(f);
    try {
      await gw.waitFor(() => /listener egress \(connect, tls\) up on 127\.0\.0\.1:\d+/.test(gw.stderr), "listener up");
      const port = Number(/up on 127\.0\.0\.1:(\d+)/.exec(gw.stderr)![1]);
      const s = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: pki.caCert });
      try {
        await withTimeout(new Promise<void>((res, rej) => s.once("secureConnect", res).once("error", rej)), 5000, "TLS handshake");
        assert.equal(s.authorized, true);
      } finally {
        s.destroy();
      }
    } finally {
      gw.child.kill("SIGTERM");
      await gw.exit();
    }
  });

  test("check-config refuses, with the line run prints and exit 2, everything run refuses before it opens a listener", async () => {
    const taken = await freePort();
    const cases: Array<[string, string, RegExp]> = [
      ["admin-no-token.toml", `[admin]\nenabled = true\nbind = "127.0.0.1:0"\n${LISTENER}`, /^admin\.token_env: the environment variable PORTCULLIS_ADMIN_TOKEN is not set/m],
      ["admin-short-token.toml", `[admin]\nenabled = true\nbind = "127.0.0.1:0"\ntoken = "short"\n${LISTENER}`, /^admin\.token: expected a string of at least 16 characters/m],
      [
        "policy-no-url.toml",
        `${LISTENER}policy = { source = "postgres", public_key = "certs/ca.crt" }\n`,
        /^listener\[0\]\.policy\.url: not set, nor the environment variable PORTCULLIS_POLICY_URL/m,
      ],
      [
        "policy-bad-key.toml",
        `${LISTENER}policy = { source = "postgres", url = "postgres://127.0.0.1:1/x", public_key = "missing.pub.pem" }\n`,
        /^listener\[0\]\.policy\.public_key: ".*missing\.pub\.pem" cannot read: ENOENT$/m,
      ],
      [
        "same-bind.toml",
        `[[listener]]\nname = "a"\nkind = "connect"\nbind = "127.0.0.1:${taken}"\n[[listener]]\nname = "b"\nkind = "tcp"\nupstream = "127.0.0.1:1"\nbind = "0.0.0.0:${taken}"\n`,
        /^listener\[1\]\.bind: 0\.0\.0\.0:\d+ is already taken by listener "a" \(listener\[0\]\.bind\)/m,
      ],
      [
        "admin-same-bind.toml",
        `[admin]\nenabled = true\nbind = "127.0.0.1:${taken}"\ntoken = "${TOKEN}"\n[[listener]]\nname = "a"\nkind = "connect"\nbind = "127.0.0.1:${taken}"\n`,
        /^admin\.bind: 127\.0\.0\.1:\d+ is already taken by listener "a"/m,
      ],
    ];
    for (const [name, text, want] of cases) {
      const f = await file(`conf/${name}`, text);
      const [check, run] = await Promise.all([cli(["check-config", "-c", f]), cli(["run", "-c", f])]);
      assert.equal(check.code, 2, `${name}: check-config exits 2\n${check.stderr}`);
      assert.match(check.stderr, want, name);
      assert.equal(run.code, 2, `${name}: run exits 2 before opening anything\n${run.stderr}`);
      assert.match(run.stderr, want, name);
      assert.doesNotMatch(run.stderr, /listener .* up on/, `${name}: nothing opened`);
    }
    // A UDP and a TCP listener may share a port; port 0 never collides.
    const ok = await file("conf/udp-and-tcp.toml", `[[listener]]\nname = "a"\nkind = "connect"\nbind = "127.0.0.1:${taken}"\n[[listener]]\nname = "u"\nkind = "udp"\nbind = "127.0.0.1:${taken}"\nupstream = "127.0.0.1:53"\n${LISTENER.replace('"egress"', '"c"')}${LISTENER.replace('"egress"', '"d"')}`);
    const r = await cli(["check-config", "-c", ok]);
    assert.equal(r.code, 0, r.stderr);
  });

  test("bans -c FILE reads the admin listener's address and token from the file the gateway runs with", async () => {
    const adminPort = await freePort();
    const f = await file("conf/admin.toml", `[admin]\nenabled = true\nbind = "127.0.0.1:${adminPort}"\ntoken = "${TOKEN}"\n${LISTENER}`);
    const gw = new GatewayProcess(f);
    try {
      await gw.waitFor(() => gw.stderr.includes("admin listener up"), "admin listener up");
      const add = await cli(["bans", "add", "192.0.2.7", "--duration", "10m", "-c", f]);
      assert.equal(add.code, 0, add.stderr);
      assert.match(add.stdout, /^banned 192\.0\.2\.7 until \d{4}-/);
      const list = await cli(["bans", "list", "--config", f]);
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /^192\.0\.2\.7\s+\S+Z\s+10m$/m);
      const rm = await cli(["bans", "remove", "192.0.2.7", "-c", f]);
      assert.deepEqual([rm.code, rm.stdout.trim()], [0, "unbanned 192.0.2.7"]);
    } finally {
      gw.child.kill("SIGTERM");
      await gw.exit();
    }
  });

  test("bans and permit: a file without what they need, or a bad command line, is one clear line and exit 2", async () => {
    const plain = await file("conf/plain.toml", LISTENER);
    const envToken = await file("conf/env-token.toml", `[admin]\nenabled = true\nbind = "127.0.0.1:9"\ntoken_env = "MY_ADMIN_TOKEN"\n${LISTENER}`);
    const anyPort = await file("conf/any-port.toml", `[admin]\nenabled = true\nbind = "127.0.0.1:0"\ntoken = "${TOKEN}"\n${LISTENER}`);
    const broken = await file("conf/broken.toml", `gaurd = {}\n${LISTENER}`);
    const cases: Array<[string[], string]> = [
      [["bans", "list", "-c", plain], `portcullis bans: ${plain}: admin.enabled: the admin listener is off (set [admin] enabled = true and a token, then restart the gateway)`],
      [["bans", "list", "-c", envToken], `portcullis bans: ${envToken}: admin.token_env: the environment variable MY_ADMIN_TOKEN is not set (an enabled admin listener needs a token)`],
      [["bans", "list", "-c", anyPort], `portcullis bans: ${anyPort}: admin.bind: port 0 (any free port) cannot be found from the file; pass --url`],
      [["bans", "list", "-c", broken], `portcullis bans: ${broken}: gaurd: unknown key (did you mean "guard"?)`],
      [["bans", "list", "-c", join(dir, "nope.toml")], `portcullis bans: ${join(dir, "nope.toml")}: ${join(dir, "nope.toml")}: cannot read (ENOENT)`],
      [["bans", "list", "-c"], "portcullis bans: -c, --config needs a value (try --help)"],
      [["bans", "list", "--cofnig", plain], "portcullis bans: unknown option --cofnig (try --help)"],
      [["permit", "list", "-c", plain], `portcullis permit list: ${plain}: no listener has policy = { source = "postgres", ... } (signed permissions are off)`],
      [["permit", "list", "-c"], "portcullis permit list: -c, --config needs a value (try --help)"],
      [["permit", "verify", "--bogus"], "portcullis permit verify: unknown option --bogus (try --help)"],
      [["check-config", "-x"], "portcullis check-config: unknown option -x (try --help)"],
    ];
    const runs = await Promise.all(cases.map(([args]) => cli(args)));
    runs.forEach((r, i) => {
      assert.equal(r.code, 2, `${cases[i]![0].join(" ")}: ${r.stderr}`);
      assert.equal(r.stderr.trim(), cases[i]![1]);
    });
  });
});
