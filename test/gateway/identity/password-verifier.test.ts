import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ManualClock } from "../../../src/core/clock.js";
import { UserTable } from "../../../src/gateway/identity/basic-auth.js";
import { CredentialCache } from "../../../src/gateway/identity/credential-cache.js";
import { PasswordVerifier, type VerifierSettings } from "../../../src/gateway/identity/password-verifier.js";
import { hashPassword } from "../../../src/gateway/identity/passwords.js";
import type { VerificationPriority } from "../../../src/gateway/identity/verification-gate.js";
import { authEnvironmentProblems, threadPoolSize, verifierSettings } from "../../../src/gateway/identity/config-schema.js";
import { validateConfig } from "../../../src/gateway/config/load.js";

// Cheap parameters: what is tested is which checks run, not their cost.
const FAST = { N: 1024, r: 8, p: 1 };

/** A user table that counts the password hashes it runs (known users and the dummy alike). */
class CountingTable extends UserTable {
  checks: string[] = [];
  override async verify(user: string, password: string): Promise<boolean> {
    this.checks.push(user);
    return super.verify(user, password);
  }
}

const SETTINGS: VerifierSettings = { concurrency: 3, maxQueued: 32, maxWaitMs: 5000, cacheSize: 100, cacheTtlMs: 60_000, trustedSize: 100, trustedTtlMs: 600_000 };

async function setup(s: Partial<VerifierSettings> = {}) {
  const clock = new ManualClock();
  const table = new CountingTable({ alice: await hashPassword("wonderland", FAST), bob: await hashPassword("builder", FAST), carol: await hashPassword("singer", FAST) });
  const waits: VerificationPriority[] = [];
  const verifier = new PasswordVerifier(table, { ...SETTINGS, ...s }, clock, { waited: (_ms, p) => waits.push(p) });
  return { clock, table, verifier, waits };
}

describe("password verifier", () => {
  test("a verified credential is accepted again from the cache without hashing; a wrong one is never cached", async () => {
    const { table, verifier } = await setup();
    assert.equal(await verifier.verify({ user: "alice", password: "wonderland", key: "127.0.0.1" }), "accept");
    assert.equal(await verifier.verify({ user: "alice", password: "wonderland", key: "127.0.0.2" }), "accept");
    assert.deepEqual(table.checks, ["alice"], "one hash for two logins");
    assert.equal(await verifier.verify({ user: "alice", password: "wrong", key: "127.0.0.3" }), "reject");
    assert.equal(await verifier.verify({ user: "alice", password: "wrong", key: "127.0.0.3" }), "reject");
    assert.equal(await verifier.verify({ user: "alice", password: "wonderlanD", key: "127.0.0.1" }), "reject");
    assert.deepEqual(table.checks, ["alice", "alice", "alice", "alice"], "every wrong password is hashed");
  });

  test("a cached credential expires after cache_ttl (manual clock)", async () => {
    const { table, verifier, clock } = await setup({ cacheTtlMs: 10_000 });
    await verifier.verify({ user: "alice", password: "wonderland", key: "k" });
    clock.advance(9_999);
    assert.equal(await verifier.verify({ user: "alice", password: "wonderland", key: "k" }), "accept");
    assert.equal(table.checks.length, 1, "still cached at 9.999 s");
    clock.advance(1);
    assert.equal(await verifier.verify({ user: "alice", password: "wonderland", key: "k" }), "accept");
    assert.equal(table.checks.length, 2, "hashed again at 10 s");
  });

  test("the cache holds at most cache_size credentials, least recently used out first", async () => {
    const { table, verifier } = await setup({ cacheSize: 2 });
    const login = (user: string, password: string) => verifier.verify({ user, password, key: "k" });
    await login("alice", "wonderland");
    await login("bob", "builder");
    await login("alice", "wonderland"); // alice is now the most recent
    await login("carol", "singer"); // evicts bob
    assert.equal(verifier.cachedCredentials, 2);
    table.checks = [];
    await login("alice", "wonderland");
    await login("carol", "singer");
    assert.deepEqual(table.checks, [], "alice and carol still cached");
    await login("bob", "builder");
    assert.deepEqual(table.checks, ["bob"], "bob was evicted");
  });

  test("cache_size 0 turns the cache off", async () => {
    const { table, verifier } = await setup({ cacheSize: 0 });
    await verifier.verify({ user: "alice", password: "wonderland", key: "k" });
    await verifier.verify({ user: "alice", password: "wonderland", key: "k" });
    assert.equal(table.checks.length, 2);
  });

  test("after a reload that changes a user's hash, the old password is not accepted from the cache", async () => {
    const { verifier } = await setup();
    assert.equal(await verifier.verify({ user: "alice", password: "wonderland", key: "k" }), "accept");
    const next = new CountingTable({ alice: await hashPassword("looking-glass", FAST) });
    verifier.useUsers(next);
    assert.equal(await verifier.verify({ user: "alice", password: "wonderland", key: "k" }), "reject");
    assert.equal(await verifier.verify({ user: "alice", password: "looking-glass", key: "k" }), "accept");
    assert.deepEqual(next.checks, ["alice", "alice"]);
  });

  test("an unknown user takes the same path: one hash through the same gate, bounded by the same cap", async () => {
    const { table, verifier, waits } = await setup({ concurrency: 1, maxQueued: 0 });
    assert.equal(await verifier.verify({ user: "mallory", password: "x", key: "k1" }), "reject");
    assert.deepEqual(table.checks, ["mallory"], "the dummy hash ran, as for a known user");
    assert.deepEqual(waits, ["unknown"], "through the gate");
    // With the only slot taken by a known user's check and no queue, an unknown user is refused unhashed, like a known one.
    const running = verifier.verify({ user: "alice", password: "nope", key: "k2" });
    assert.equal(await verifier.verify({ user: "mallory", password: "x", key: "k3" }), "queue_full");
    assert.equal(await verifier.verify({ user: "bob", password: "x", key: "k4" }), "queue_full");
    assert.equal(await running, "reject");
    assert.deepEqual(table.checks, ["mallory", "alice"]);
  });

  test("an address with a recent success, or a client certificate, is served in the trusted class", async () => {
    const { verifier, waits, clock } = await setup({ trustedTtlMs: 60_000, cacheSize: 0 });
    await verifier.verify({ user: "alice", password: "wrong", key: "10.0.0.1" });
    await verifier.verify({ user: "alice", password: "wonderland", key: "10.0.0.1" });
    await verifier.verify({ user: "bob", password: "wrong", key: "10.0.0.1" });
    await verifier.verify({ user: "bob", password: "wrong", key: "10.0.0.2" });
    await verifier.verify({ user: "bob", password: "wrong", key: "10.0.0.3", certified: true });
    clock.advance(60_000);
    await verifier.verify({ user: "bob", password: "wrong", key: "10.0.0.1" });
    assert.deepEqual(waits, ["unknown", "unknown", "trusted", "unknown", "trusted", "unknown"]);
  });

  test("a check for a connection that closed while waiting is dropped unhashed", async () => {
    const { table, verifier } = await setup({ concurrency: 1 });
    const first = verifier.verify({ user: "alice", password: "wrong", key: "a" });
    const closed = new AbortController();
    const second = verifier.verify({ user: "bob", password: "wrong", key: "b", signal: closed.signal });
    closed.abort();
    assert.equal(await second, "closed");
    assert.equal(await first, "reject");
    assert.deepEqual(table.checks, ["alice"]);
  });
});

describe("credential cache", () => {
  test("keys are an HMAC of user and password under the instance's key: nothing stored reveals them", async () => {
    const clock = new ManualClock();
    const cache = new CredentialCache(clock, 10, 1000, Buffer.alloc(32, 7));
    cache.add("alice", "wonderland", "scrypt$h");
    assert.ok(cache.has("alice", "wonderland", "scrypt$h"));
    // The boundary between user and password is part of the key.
    assert.ok(!cache.has("alicew", "onderland", "scrypt$h"));
    assert.ok(!cache.has("alice", "wonderland", "scrypt$other"));
    const stored = JSON.stringify([...(cache as unknown as { entries: { entries: Map<string, unknown> } }).entries.entries.keys()]);
    assert.ok(!stored.includes("wonderland") && !stored.includes("alice"));
    // Another instance (another random key) shares nothing.
    assert.ok(!new CredentialCache(clock, 10, 1000).has("alice", "wonderland", "scrypt$h"));
  });
});

describe("[auth] settings", () => {
  test("defaults: the thread pool size minus one (UV_THREADPOOL_SIZE) and the cores minus one, at least one", () => {
    const r = validateConfig({ listener: [{ name: "l", kind: "connect", bind: "127.0.0.1:0" }] });
    assert.ok(r.ok);
    assert.equal(threadPoolSize({}), 4);
    assert.equal(threadPoolSize({ UV_THREADPOOL_SIZE: "8" }), 8);
    assert.equal(threadPoolSize({ UV_THREADPOOL_SIZE: "0" }), 4);
    assert.equal(threadPoolSize({ UV_THREADPOOL_SIZE: "many" }), 4);
    assert.equal(verifierSettings(r.config.auth, {}, 8).concurrency, 3, "the pool minus one");
    assert.equal(verifierSettings(r.config.auth, { UV_THREADPOOL_SIZE: "1" }, 8).concurrency, 1);
    assert.equal(verifierSettings(r.config.auth, { UV_THREADPOOL_SIZE: "16" }, 32).concurrency, 15);
    assert.equal(verifierSettings(r.config.auth, {}, 2).concurrency, 1, "2 cores: one stays with the event loop");
    assert.equal(verifierSettings(r.config.auth, { UV_THREADPOOL_SIZE: "16" }, 4).concurrency, 3, "the cores minus one");
    assert.equal(verifierSettings(r.config.auth, {}, 1).concurrency, 1, "at least one");
    assert.deepEqual(
      { ...verifierSettings(r.config.auth, {}), concurrency: 0 },
      { concurrency: 0, maxQueued: 32, maxWaitMs: 5000, cacheSize: 10_000, cacheTtlMs: 300_000, trustedSize: 10_000, trustedTtlMs: 3_600_000 },
    );
  });

  test("bad values name the key path; a cap that takes the whole pool is refused", () => {
    const r = validateConfig({
      auth: { max_concurrent_verifications: 0, max_queued_verifications: -1, cache_ttl: "soon", colour: 1 },
      listener: [{ name: "l", kind: "connect", bind: "127.0.0.1:0" }],
    });
    assert.ok(!r.ok);
    assert.deepEqual(r.problems.map((p) => p.split(":")[0]).sort(), ["auth.cache_ttl", "auth.colour", "auth.max_concurrent_verifications", "auth.max_queued_verifications"]);
    const ok = validateConfig({ auth: { max_concurrent_verifications: 4 }, listener: [{ name: "l", kind: "connect", bind: "127.0.0.1:0" }] });
    assert.ok(ok.ok);
    assert.match(authEnvironmentProblems(ok.config.auth, {})[0] ?? "", /^auth\.max_concurrent_verifications: expected less than libuv's thread pool size \(4/);
    assert.deepEqual(authEnvironmentProblems(ok.config.auth, { UV_THREADPOOL_SIZE: "5" }), []);
  });
});
