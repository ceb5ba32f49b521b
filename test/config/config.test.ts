import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDuration } from "../../src/config/duration.js";
import { parseSize } from "../../src/config/size.js";
import { loadConfigFile, validateConfig } from "../../src/gateway/config/load.js";
import { hashPassword } from "../../src/gateway/identity/passwords.js";
import { type CliRun, runCli } from "../helpers/cli.js";

const root = new URL("../..", import.meta.url).pathname;

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return runCli(args, { env: { ...process.env, ...env } });
}

const LISTENER = '[[listener]]\nname = "egress"\nkind = "connect"\nbind = "127.0.0.1:8080"\n';

describe("durations and sizes", () => {
  test("every accepted duration form", () => {
    assert.equal(parseDuration("30s"), 30_000);
    assert.equal(parseDuration("10m"), 600_000);
    assert.equal(parseDuration("1h"), 3_600_000);
    assert.equal(parseDuration("250ms"), 250);
    assert.equal(parseDuration("1h30m"), 5_400_000);
    assert.equal(parseDuration("00:01:00"), 60_000);
    assert.equal(parseDuration("01:02:03"), 3_723_000);
    assert.equal(parseDuration("PT1M"), 60_000);
    assert.equal(parseDuration("PT1H30M5S"), 5_405_000);
    assert.equal(parseDuration("P1D"), 86_400_000);
  });

  test("what is not a duration", () => {
    for (const bad of ["30", "", "abc", "10 minutes", "PT", "P", "00:61:00", "-5s", "1y"]) assert.equal(parseDuration(bad), undefined, bad);
  });

  test("sizes with units and digit separators", () => {
    assert.equal(parseSize("10MiB"), 10 * 1024 * 1024);
    assert.equal(parseSize("512KiB"), 512 * 1024);
    assert.equal(parseSize("1GB"), 1e9);
    assert.equal(parseSize("1_000_000"), 1_000_000);
    assert.equal(parseSize(1_000_000), 1_000_000);
    for (const bad of ["10XB", "-1", "1.5", "MiB", 1.5]) assert.equal(parseSize(bad), undefined, String(bad));
  });
});

describe("loading", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "portcullis-config-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const file = async (name: string, text: string): Promise<string> => {
    const p = join(dir, name);
    await writeFile(p, text);
    return p;
  };

  test("a file with only a listener loads with every default (older files keep loading)", async () => {
    const r = loadConfigFile(await file("min.toml", LISTENER), {});
    assert.ok(r.ok);
    const c = r.config;
    assert.equal(c.guard.max_connections_per_ip.limit, 100);
    assert.equal(c.guard.max_auth_attempts, 3);
    assert.deepEqual([c.guard.ban.failures, c.guard.ban.window, c.guard.ban.duration], [10, 60_000, 600_000]);
    assert.equal(c.guard.ban_closes_connections, true);
    assert.equal(c.guard.ipv6_prefix, 64);
    assert.equal(c.log.format, "json");
    assert.equal(c.log.audit_destinations, false);
    assert.equal(c.listener[0]!.idle_timeout, 300_000);
  });

  test("durations and sizes in the file, in every form", async () => {
    const r = loadConfigFile(
      await file(
        "forms.toml",
        `[guard]\nconnection_rate = { limit = 5, window = "00:01:00" }\nban = { window = "PT1M", duration = "1h", max_duration = "2h" }\n${LISTENER}max_request_bytes = "8KiB"\nidle_timeout = "30s"\n`,
      ),
      {},
    );
    assert.ok(r.ok, r.ok ? "" : r.problems.join("\n"));
    assert.equal(r.config.guard.connection_rate?.window, 60_000);
    assert.equal(r.config.guard.ban.window, 60_000);
    assert.equal(r.config.guard.ban.duration, 3_600_000);
    assert.equal(r.config.listener[0]!.max_request_bytes, 8192);
    assert.equal(r.config.listener[0]!.idle_timeout, 30_000);
  });

  test("environment overrides by hierarchy win over the file", async () => {
    const p = await file("env.toml", `[guard]\nmax_connections_per_ip = 10\n${LISTENER}`);
    const r = loadConfigFile(p, {
      PORTCULLIS__GUARD__MAX_CONNECTIONS_PER_IP: "50",
      PORTCULLIS__GUARD__BAN__DURATION: "PT5M",
      PORTCULLIS__LOG__AUDIT_DESTINATIONS: "true",
      PORTCULLIS__LISTENER__0__BIND: "127.0.0.2:9090",
      UNRELATED: "x",
    });
    assert.ok(r.ok, r.ok ? "" : r.problems.join("\n"));
    assert.equal(r.config.guard.max_connections_per_ip.limit, 50);
    assert.equal(r.config.guard.ban.duration, 300_000);
    assert.equal(r.config.log.audit_destinations, true);
    assert.deepEqual(r.config.listener[0]!.bind, { host: "127.0.0.2", port: 9090 });
  });

  test("every problem is one line naming its key path", async () => {
    const r = validateConfig({
      guard: { max_connections_per_ip: "x", ban: { duration: "forever" }, colour: "red", allow: ["10.0.0.0/33"] },
      log: { format: "xml" },
      listener: [{ name: "a", kind: "tcp", bind: "nowhere" }],
    });
    assert.ok(!r.ok);
    assert.deepEqual(new Set(r.problems), new Set([
      'guard.max_connections_per_ip: expected a positive integer, got "x"',
      'guard.ban.duration: expected a duration such as "30s", "10m", "1h", "00:01:00" or "PT1M", got "forever"',
      "guard.colour: unknown key",
      'guard.allow[0]: expected a CIDR block such as "10.0.0.0/8" or "2001:db8::/32", or an address, got "10.0.0.0/33" (prefix length must be a whole number from 0 to 32)',
      'log.format: expected one of "json", "logfmt", got "xml"',
      'listener[0].bind: expected "host:port" (IPv6 as "[::1]:8080"), got "nowhere"',
    ]));
    const tcp = validateConfig({ listener: [{ name: "a", kind: "tcp", bind: "127.0.0.1:1" }] });
    assert.ok(!tcp.ok);
    assert.deepEqual(tcp.problems, ['listener[0].upstream: required for kind "tcp", e.g. "127.0.0.1:9000"']);
  });

  test("missing listeners, duplicate names, non-hash passwords and bad host patterns", () => {
    const none = validateConfig({});
    assert.ok(!none.ok && none.problems.includes("listener: required"));
    const dup = validateConfig({ listener: [{ name: "a", kind: "connect", bind: "127.0.0.1:1" }, { name: "a", kind: "connect", bind: "127.0.0.1:2" }] });
    assert.ok(!dup.ok && dup.problems.includes('listener[1].name: duplicate listener name "a"'));
    const plain = validateConfig({ users: { bob: "hunter2" }, listener: [{ name: "a", kind: "connect", bind: "127.0.0.1:1" }] });
    assert.ok(!plain.ok);
    assert.equal(plain.problems.length, 1);
    assert.match(plain.problems[0]!, /^users\.bob: expected a scrypt hash/);
    assert.ok(!plain.problems[0]!.includes("hunter2"), "a mistaken plain-text password is never echoed");
    const host = validateConfig({ policy: { rule: [{ identities: ["a"], hosts: ["Bad Host"] }] }, listener: [{ name: "a", kind: "connect", bind: "127.0.0.1:1" }] });
    assert.ok(!host.ok && host.problems[0]!.startsWith("policy.rule[0].hosts[0]: expected a host pattern"));
  });

  test("YAML files use the same schema", async () => {
    const yamlR = loadConfigFile(join(root, "examples/portcullis.yaml"), {});
    const tomlR = loadConfigFile(join(root, "examples/portcullis.toml"), {});
    assert.ok(yamlR.ok && tomlR.ok);
    assert.deepEqual({ ...yamlR.config, log: undefined }, { ...tomlR.config, log: undefined });
    const bad = loadConfigFile(await file("bad.yaml", "guard:\n  max_auth_attempts: 0\nlistener: []\n"), {});
    assert.ok(!bad.ok);
    assert.deepEqual(bad.problems, ["guard.max_auth_attempts: expected a positive integer, got 0", "listener: expected at least one [[listener]]"]);
  });

  test("check-config exits 2 with one line per problem and no stack trace, for each class of error", async () => {
    const cases: Array<[string, string, NodeJS.ProcessEnv, RegExp]> = [
      ["syntax.toml", "[guard\n", {}, /^.*syntax.toml \(toml syntax\): .* at line 1, column \d+$/],
      ["syntax.yaml", "guard: [1,\n", {}, /^.*syntax.yaml \(yaml syntax\): .* at line \d+, column \d+$/],
      ["unknown.toml", `typo = 1\n${LISTENER}`, {}, /^typo: unknown key$/],
      ["type.toml", `[guard]\nmax_connections_per_ip = "x"\n${LISTENER}`, {}, /^guard\.max_connections_per_ip: expected a positive integer, got "x"$/],
      ["env.toml", LISTENER, { PORTCULLIS__GUARD__BAN__WINDOW: "soon" }, /^guard\.ban\.window: expected a duration/],
      ["tls.toml", `${LISTENER}tls = { cert = "/nonexistent/c.pem", key = "/nonexistent/k.pem" }\n`, {}, /^listener\[0\]\.tls\.cert: cannot read "\/nonexistent\/c\.pem" \(ENOENT\)$/],
    ];
    for (const [name, text, env, line] of cases) {
      const r = await cli(["check-config", "-c", await file(name, text)], env);
      assert.equal(r.code, 2, name);
      const lines = r.stderr.trim().split("\n");
      assert.match(lines[0]!, line, name);
      assert.ok(!/\n\s+at /.test(r.stderr), `no stack trace for ${name}`);
      assert.equal(r.stdout, "");
    }
    const missing = await cli(["check-config", "-c", join(dir, "nope.toml")]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /nope\.toml: cannot read \(ENOENT\)/);
  });

  test("run refuses a bad file with exit code 2", async () => {
    const r = await cli(["run", "-c", await file("run-bad.toml", `[guard]\nmax_auth_attempts = -1\n${LISTENER}`)]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim(), "guard.max_auth_attempts: expected a positive integer, got -1");
  });

  test("check-config prints the effective configuration with secrets redacted", async () => {
    const hash = await hashPassword("pw", { N: 1024, r: 8, p: 1 });
    const r = await cli(["check-config", "-c", await file("ok.toml", `[users]\nbob = "${hash}"\n${LISTENER}`)]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes(hash), "hash redacted");
    assert.match(r.stdout, /bob = "<redacted>"/);
    assert.match(r.stdout, /max_auth_attempts = 3/);
    assert.match(r.stdout, /duration = "10m"/);
    assert.match(r.stdout, /bind = "127\.0\.0\.1:8080"/);
  });
});
