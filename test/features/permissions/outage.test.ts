import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { ManualClock, systemClock } from "../../../src/core/clock.js";
import { generateSigningKey, Keyring } from "../../../src/features/permissions/signing-keys.js";
import { migrate } from "../../../src/features/permissions/migrate.js";
import { PgPermissionPolicy } from "../../../src/features/permissions/pg-policy.js";
import type { PolicyLogger } from "../../../src/features/permissions/policy-logger.js";
import { grant, type PgFixture } from "./pg-fixture.js";
import { startThrowawayPg, type ThrowawayPg } from "./throwaway-pg.js";
import { waitUntil, sleep } from "../../helpers/wait.js";

describe("PostgreSQL failures, on a throw-away cluster", () => {
  let cluster: ThrowawayPg;
  let db: pg.Client;
  const policies: PgPermissionPolicy[] = [];
  let stoppedPid: number | undefined;

  before(async () => {
    cluster = await startThrowawayPg();
    db = new pg.Client({ connectionString: cluster.url });
    db.on("error", () => {});
    await db.connect();
    await migrate(db);
  });

  after(async () => {
    if (stoppedPid !== undefined) process.kill(stoppedPid, "SIGCONT");
    for (const p of policies) await p.close();
    await db.end().catch(() => {});
    await cluster.destroy();
  });

  test("PostgreSQL stopped mid-run: fails closed except for cached decisions, reports not ready, logs it, and recovers by itself", async () => {
    const key = generateSigningKey();
    const fixture: PgFixture = { url: cluster.url, schema: "public", db, drop: async () => {} };
    const id = "spiffe://enclave/outage";
    const now = systemClock.wallNow();
    const cached = await grant(fixture, { identity: id, dest: "cached.example.com", ports: "443", key }, now);
    const fresh = await grant(fixture, { identity: id, dest: "fresh.example.com", ports: "443", key }, now);
    const gone = await grant(fixture, { identity: id, dest: "gone.example.com", ports: "443", key }, now);
    await db.end();

    const events: string[] = [];
    const logger: PolicyLogger = { info: (m) => events.push(`info ${m}`), warn: (m) => events.push(`warn ${m}`) };
    const clock = new ManualClock(0, now);
    const p = await PgPermissionPolicy.open({
      url: cluster.url,
      keyring: new Keyring([key.publicKey]),
      clock,
      logger,
      cacheTtlMs: 10_000,
      reconnectInitialMs: 100,
      reconnectMaxMs: 1000,
      heartbeatMs: 1e12,
      queryTimeoutMs: 2000,
    });
    policies.push(p);
    assert.equal(p.ready(), true);
    assert.deepEqual(await p.decide(id, "cached.example.com", 443), { allowed: true, reason: "granted", rowId: cached });
    assert.equal((await p.decide(id, "gone.example.com", 443)).allowed, true);
    const revoked: string[] = [];
    p.onRevoke((_i, rowId) => revoked.push(rowId));

    // A deletion the policy never hears of (trigger off): found when it reconciles after reconnecting.
    const admin = new pg.Client({ connectionString: cluster.url });
    await admin.connect();
    await admin.query("ALTER TABLE portcullis_permissions DISABLE TRIGGER portcullis_permissions_changed");
    await admin.query("DELETE FROM portcullis_permissions WHERE id = $1", [gone]);
    await admin.query("ALTER TABLE portcullis_permissions ENABLE TRIGGER portcullis_permissions_changed");
    await admin.end();

    await cluster.stop();
    await waitUntil(() => !p.ready(), { timeoutMs: 5000, intervalMs: 10, message: "readiness to fail" });
    // A gateway started while PostgreSQL is down starts not ready, denies, and connects once it can.
    const lateEvents: string[] = [];
    const lateLogger: PolicyLogger = { info: (m) => lateEvents.push(`info ${m}`), warn: (m) => lateEvents.push(`warn ${m}`) };
    const late = await PgPermissionPolicy.open({ url: cluster.url, keyring: new Keyring([key.publicKey]), clock, logger: lateLogger, reconnectInitialMs: 100, reconnectMaxMs: 1000, heartbeatMs: 1e12 });
    policies.push(late);
    assert.equal(late.ready(), false);
    assert.deepEqual(lateEvents, ["warn permission store unreachable; denying new tunnels except cached decisions"]);
    assert.deepEqual(await late.decide(id, "fresh.example.com", 443), { allowed: false, reason: "policy_unavailable" });
    assert.ok(events.includes("warn permission store unreachable; denying new tunnels except cached decisions"), events.join("\n"));
    // Still within the TTL: the cached decision stands. Anything else is denied, at once.
    assert.deepEqual(await p.decide(id, "cached.example.com", 443), { allowed: true, reason: "granted", rowId: cached });
    assert.deepEqual(await p.decide(id, "fresh.example.com", 443), { allowed: false, reason: "policy_unavailable" });
    // Reconnect attempts keep failing while it is down.
    for (let i = 0; i < 3; i++) {
      clock.advance(1000);
      await sleep(50);
    }
    assert.equal(p.ready(), false);
    // Once the TTL is over, the cached decision is gone too: fail closed.
    clock.advance(10_000);
    assert.deepEqual(await p.decide(id, "cached.example.com", 443), { allowed: false, reason: "policy_unavailable" });
    assert.ok(p.stats().unavailableDenials >= 2);

    await cluster.start();
    await waitUntil(() => {
        clock.advance(1000); // let the backoff timer fire
        return p.ready();
      }, { timeoutMs: 15_000, intervalMs: 10, message: "the policy to reconnect" });
    assert.equal(p.stats().reconnects, 1);
    await waitUntil(() => {
        clock.advance(1000);
        return late.ready();
      }, { timeoutMs: 15_000, intervalMs: 10, message: "the late policy to connect" });
    assert.deepEqual(await late.decide(id, "fresh.example.com", 443), { allowed: true, reason: "granted", rowId: fresh });
    assert.deepEqual(await p.decide(id, "fresh.example.com", 443), { allowed: true, reason: "granted", rowId: fresh });
    assert.deepEqual(await p.decide(id, "cached.example.com", 443), { allowed: true, reason: "granted", rowId: cached });
    await waitUntil(() => revoked.includes(gone), { timeoutMs: 5000, intervalMs: 10, message: "the missed deletion to be reported" });
    assert.deepEqual(await p.decide(id, "gone.example.com", 443), { allowed: false, reason: "no_permission" });
    assert.ok(events.filter((e) => e === "info permission store connected").length >= 2);
  });

  test("a LISTEN connection that hangs is detected by the heartbeat, reported not ready, and replaced", async () => {
    const clock = new ManualClock(0, systemClock.wallNow());
    const clientConfig = { connectionString: cluster.url, application_name: "portcullis-hang-test" };
    const p = await PgPermissionPolicy.open({ clientConfig, keyring: new Keyring([generateSigningKey().publicKey]), clock, heartbeatMs: 5000, reconnectInitialMs: 100 });
    policies.push(p);
    assert.equal(p.ready(), true);
    const admin = new pg.Client({ connectionString: cluster.url });
    await admin.connect();
    const r = await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'portcullis-hang-test' AND query ILIKE 'LISTEN%'");
    await admin.end();
    assert.equal(r.rows.length, 1);
    // Freeze the server process of the LISTEN connection: no error, no close, just silence.
    stoppedPid = r.rows[0]!.pid;
    process.kill(stoppedPid, "SIGSTOP");
    clock.advance(5000); // the heartbeat query goes out and gets no answer
    assert.equal(p.ready(), true);
    clock.advance(5000); // one more period without an answer: the connection is given up
    assert.equal(p.ready(), false);
    await waitUntil(() => {
        clock.advance(100);
        return p.ready();
      }, { timeoutMs: 10_000, intervalMs: 10, message: "a fresh LISTEN connection" });
    assert.equal(p.stats().reconnects, 1);
  });
});
