/**
 * The [store] section: validated like every other section (exit 2 naming
 * the key path), the Redis password never shown (errors, the effective
 * configuration), check-config without a Redis, and the fleet example.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validateConfig } from "../../src/gateway/config/load.js";
import { type CliRun, runCli } from "../helpers/cli.js";

const root = new URL("../..", import.meta.url).pathname;
const LISTENER = '[[listener]]\nname = "egress"\nkind = "connect"\nbind = "127.0.0.1:8080"\n';
const SECRET = "hunter2-s3cret";

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return runCli(args, { env: { ...process.env, ...env } });
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "portcullis-store-config-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, text: string): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, text);
  return p;
}

function problems(store: Record<string, unknown>): string[] {
  const r = validateConfig({ store, listener: [{ name: "l", kind: "connect", bind: "127.0.0.1:0" }] });
  return r.ok ? [] : r.problems;
}

describe("[store]", () => {
  test("memory stays the default; redis takes url, prefix, cluster, on_failure, tls, lease_ttl", () => {
    const d = validateConfig({ listener: [{ name: "l", kind: "connect", bind: "127.0.0.1:0" }] });
    assert.ok(d.ok);
    assert.equal(d.config.store.kind, "memory");
    const r = validateConfig({
      store: { kind: "redis", url: "rediss://u:p@h:6380/1", prefix: "pc:", cluster: true, on_failure: "closed", tls: { ca: "ca.pem" }, lease_ttl: "5s" },
      listener: [{ name: "l", kind: "connect", bind: "127.0.0.1:0" }],
    });
    assert.ok(r.ok, r.ok ? "" : r.problems.join("\n"));
    assert.deepEqual({ ...r.config.store }, {
      kind: "redis",
      max_keys: 1_000_000,
      url: "rediss://u:p@h:6380/1",
      prefix: "pc:",
      cluster: true,
      on_failure: "closed",
      tls: { ca: "ca.pem" },
      lease_ttl: 5000,
      timeout: 250,
      expected_instances: 2,
    });
  });

  test("each mistake names its key path, and a bad URL is never echoed", () => {
    assert.deepEqual(problems({ kind: "mongo" }), ['store.kind: expected one of "memory", "redis", got "mongo"']);
    assert.deepEqual(problems({ kind: "redis" }), ['store.url: kind = "redis" needs url or url_env']);
    assert.deepEqual(problems({ kind: "redis", url: "redis://h", url_env: "X" }), ["store.url_env: give url or url_env, not both"]);
    assert.deepEqual(problems({ url: "redis://h" }), ['store.url: only with kind = "redis"']);
    assert.deepEqual(problems({ kind: "redis", url: "redis://h", on_failure: "maybe" }), ['store.on_failure: expected one of "insurance", "open", "closed", got "maybe"']);
    assert.deepEqual(problems({ kind: "redis", url: "redis://h", prefix: "{pc}" }), ['store.prefix: expected a key prefix of at most 64 characters without braces or spaces, such as "pc:", got "{pc}"']);
    assert.deepEqual(problems({ kind: "redis", url: "redis://h", tls: { ca: "ca.pem" } }), ["store.tls: TLS files need a rediss:// url"]);
    assert.deepEqual(problems({ kind: "redis", url: "rediss://h", tls: { cert: "c.pem" } }), ["store.tls.key: a client certificate needs both cert and key"]);
    assert.deepEqual(problems({ kind: "redis", url: "redis://h", lease_ttl: "soon" }).length, 1);
    const bad = problems({ kind: "redis", url: `http://admin:${SECRET}@h:6379` });
    assert.equal(bad.length, 1);
    assert.match(bad[0]!, /^store\.url: expected a URL such as/);
    assert.ok(!bad[0]!.includes(SECRET), "the password is not shown");
  });

  test("check-config: exit 2 naming the key path without the password; url_env must be set", async () => {
    const badUrl = await cli(["check-config", "-c", await file("bad-url.toml", `[store]\nkind = "redis"\nurl = "redis//u:${SECRET}@h"\n${LISTENER}`)]);
    assert.equal(badUrl.code, 2);
    assert.match(badUrl.stderr, /^store\.url: expected a URL/);
    assert.ok(!badUrl.stderr.includes(SECRET));
    const unset = await cli(["check-config", "-c", await file("env.toml", `[store]\nkind = "redis"\nurl_env = "PC_TEST_REDIS_URL"\n${LISTENER}`)], { PC_TEST_REDIS_URL: "" });
    assert.equal(unset.code, 2);
    assert.equal(unset.stderr.trim(), "store.url_env: the environment variable PC_TEST_REDIS_URL is not set");
    const run = await cli(["run", "-c", join(dir, "env.toml")], { PC_TEST_REDIS_URL: "" });
    assert.equal(run.code, 2, "run refuses it too, before anything opens");
    const tls = await cli(["check-config", "-c", await file("tls.toml", `[store]\nkind = "redis"\nurl = "rediss://h"\ntls = { ca = "/nonexistent/ca.pem" }\n${LISTENER}`)]);
    assert.equal(tls.code, 2);
    assert.equal(tls.stderr.trim(), 'store.tls.ca: cannot read "/nonexistent/ca.pem" (ENOENT)');
  });

  test("check-config needs no Redis and prints the URL with its password redacted", async () => {
    // Port 1: nothing listens there.
    const r = await cli(["check-config", "-c", await file("ok.toml", `[store]\nkind = "redis"\nurl = "redis://pc:${SECRET}@127.0.0.1:1/0"\n${LISTENER}`)]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes(SECRET), "password redacted");
    assert.match(r.stdout, /url = "redis:\/\/pc:<redacted>@127\.0\.0\.1:1\/0"/);
    assert.match(r.stdout, /lease_ttl = "30s"/);
  });

  test("examples/fleet.toml is a valid configuration", async () => {
    const r = await cli(["check-config", "-c", join(root, "examples/fleet.toml")], {
      PORTCULLIS_REDIS_URL: `rediss://portcullis:${SECRET}@127.0.0.1:1/0`,
      PORTCULLIS_ADMIN_TOKEN: "an-admin-token-of-some-length",
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /kind = "redis"/);
    assert.match(r.stdout, /url_env = "PORTCULLIS_REDIS_URL"/);
    assert.ok(!r.stdout.includes(SECRET));
  });
});
