/**
 * Configuration that used to slip through: an admin token too short to use
 * (accepted by check-config, then `run` failed with exit 1 after opening the
 * data listener), an upstream URL with credentials (refused with the
 * password in the message), and a listener name with control characters.
 */
import assert from "node:assert/strict";
import { type CliRun, runCli } from "../helpers/cli.js";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { validateConfig } from "../../src/gateway/config/load.js";
import { freePort } from "../helpers/free-port.js";

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  const base = { ...process.env };
  delete base.PORTCULLIS_ADMIN_TOKEN;
  return runCli(args, { env: { ...base, ...env } });
}

const listener = (port = 8080): string => `[[listener]]\nname = "egress"\nkind = "connect"\nbind = "127.0.0.1:${port}"\n`;

describe("admin token length", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "portcullis-minor-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const file = async (name: string, text: string): Promise<string> => {
    const p = join(dir, name);
    await writeFile(p, text);
    return p;
  };

  test("check-config refuses a token under 16 characters in the file, naming the key and never showing it", async () => {
    const r = await cli(["check-config", "-c", await file("short.toml", `[admin]\nenabled = true\ntoken = "tooShort-15char"\n${listener()}`)]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim(), "admin.token: expected a string of at least 16 characters (the value is not shown)");
    assert.ok(!r.stderr.includes("tooShort") && !r.stdout.includes("tooShort"));
  });

  test("check-config refuses an enabled admin listener whose token_env is unset or short", async () => {
    const f = await file("env.toml", `[admin]\nenabled = true\ntoken_env = "MY_ADMIN_TOKEN"\n${listener()}`);
    const unset = await cli(["check-config", "-c", f]);
    assert.equal(unset.code, 2);
    assert.match(unset.stderr.trim(), /^admin\.token_env: the environment variable MY_ADMIN_TOKEN is not set/);
    const short = await cli(["check-config", "-c", f], { MY_ADMIN_TOKEN: "abc123" });
    assert.equal(short.code, 2);
    assert.equal(short.stderr.trim(), "admin.token_env: the token in MY_ADMIN_TOKEN is shorter than 16 characters");
    assert.ok(!short.stderr.includes("abc123"));
    const good = await cli(["check-config", "-c", f], { MY_ADMIN_TOKEN: "a-long-enough-admin-token" });
    assert.equal(good.code, 0, good.stderr);
    // A disabled admin listener needs no token.
    const off = await cli(["check-config", "-c", await file("off.toml", `[admin]\nenabled = false\n${listener()}`)]);
    assert.equal(off.code, 0, off.stderr);
  });

  test("run exits 2 on a short token before opening any listener", async () => {
    const port = await freePort();
    const inFile = await cli(["run", "-c", await file("run-short.toml", `[admin]\nenabled = true\ntoken = "short"\n${listener(port)}`)]);
    assert.equal(inFile.code, 2, inFile.stderr);
    assert.match(inFile.stderr, /^admin\.token: /);
    assert.doesNotMatch(inFile.stderr, /up on/, "no listener was opened");
    const fromEnv = await cli(["run", "-c", await file("run-env.toml", `[admin]\nenabled = true\n${listener(port)}`)], { PORTCULLIS_ADMIN_TOKEN: "short" });
    assert.equal(fromEnv.code, 2, fromEnv.stderr);
    assert.equal(fromEnv.stderr.trim(), "admin.token_env: the token in PORTCULLIS_ADMIN_TOKEN is shorter than 16 characters");
  });
});

describe("upstream credentials are never echoed", () => {
  test("an http or tcp upstream written with user:password@ is refused with the credentials redacted", () => {
    const cases: Array<[string, string, string]> = [
      ["http", "http://alice:hunter2@127.0.0.1:9000/", 'got "http://<redacted>@127.0.0.1:9000/"'],
      ["http", "https://alice:hun/ter#2@example.com", 'got "https://<redacted>@example.com"'],
      ["tcp", "alice:hunter2@127.0.0.1:9000", 'got "<redacted>@127.0.0.1:9000"'],
    ];
    for (const [kind, upstream, shown] of cases) {
      const r = validateConfig({ listener: [{ name: "front", kind, bind: "127.0.0.1:0", upstream }] });
      assert.ok(!r.ok, upstream);
      assert.equal(r.problems.length, 1);
      const p = r.problems[0]!;
      assert.ok(p.startsWith("listener[0].upstream: expected an upstream without credentials"), p);
      assert.ok(p.endsWith(shown), p);
      assert.ok(!p.includes("hunter2") && !p.includes("hun/ter") && !p.includes("alice"), p);
    }
    // Without credentials the usual message still shows the value.
    const plain = validateConfig({ listener: [{ name: "front", kind: "http", bind: "127.0.0.1:0", upstream: "http://127.0.0.1:9000/?q=1" }] });
    assert.ok(!plain.ok);
    assert.match(plain.problems[0]!, /got "http:\/\/127\.0\.0\.1:9000\/\?q=1"$/);
  });
});

describe("listener names", () => {
  const named = (name: unknown) => validateConfig({ listener: [{ name, kind: "connect", bind: "127.0.0.1:0" }] });

  test("control characters, spaces, quotes, non-ASCII and overlong names are refused, naming the key", () => {
    for (const bad of ["\u0000", "egress\n", "tab\there", "a b", 'q"uote', "é", "-leading", "", "x".repeat(65), 7]) {
      const r = named(bad);
      assert.ok(!r.ok, JSON.stringify(bad));
      assert.match(r.problems[0]!, /^listener\[0\]\.name: expected 1-64 ASCII letters, digits, "\.", "_" or "-"/);
      assert.ok(!r.problems[0]!.includes("\u0000") && !r.problems[0]!.includes("\n"), "the message itself carries no control character");
    }
  });

  test("letters, digits, dot, underscore and dash, up to 64", () => {
    for (const good of ["egress", "tls-in.1_a", "A", "9", "x".repeat(64)]) assert.ok(named(good).ok, good);
  });
});
