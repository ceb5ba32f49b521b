import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { ManualClock, systemClock } from "../../../src/core/clock.js";
import { generateSigningKey, Keyring, type SigningKey } from "../../../src/features/permissions/signing-keys.js";
import { PgPermissionPolicy, type PgPermissionPolicyOptions } from "../../../src/features/permissions/pg-policy.js";
import type { PolicyLogger } from "../../../src/features/permissions/policy-logger.js";
import { signGrant } from "../../../src/features/permissions/grant.js";
import { insertPermission } from "../../../src/features/permissions/table.js";
import { grant, pgFixture, type PgFixture } from "./pg-fixture.js";
import { waitUntil } from "../../helpers/wait.js";

/** Manual-clock policies never advance far enough for the liveness query to matter. */
const MANUAL = { heartbeatMs: 1e12 };

class RecordingLogger implements PolicyLogger {
  readonly lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
  info(msg: string, fields: Record<string, unknown>): void {
    this.lines.push({ level: "info", msg, fields });
  }
  warn(msg: string, fields: Record<string, unknown>): void {
    this.lines.push({ level: "warn", msg, fields });
  }
}

describe("PgPermissionPolicy against PostgreSQL", () => {
  let f: PgFixture;
  let key: SigningKey;
  const policies: PgPermissionPolicy[] = [];
  let seq = 0;
  /** A fresh identity per test, so tests share the schema without seeing each other's rows. */
  const who = () => `spiffe://enclave/agent-${++seq}`;

  async function open(o: Partial<PgPermissionPolicyOptions> = {}): Promise<PgPermissionPolicy> {
    const p = await PgPermissionPolicy.open({ url: f.url, schema: f.schema, keyring: new Keyring([key.publicKey]), ...o });
    policies.push(p);
    assert.equal(p.ready(), true);
    return p;
  }

  before(async () => {
    f = await pgFixture("policy");
    key = generateSigningKey();
  });

  after(async () => {
    await Promise.all(policies.map((p) => p.close()));
    await f.drop();
  });

  test("a signed row grants its identity the matching hosts and ports, and nothing else", async () => {
    const p = await open();
    const id = who();
    const now = systemClock.wallNow();
    const rowId = await grant(f, { identity: id, dest: "*.example.com", ports: "8000-8100", key }, now);
    assert.deepEqual(await p.decide(id, "api.example.com", 8050), { allowed: true, reason: "granted", rowId });
    assert.deepEqual(await p.decide(id, "API.EXAMPLE.COM.", 8000), { allowed: true, reason: "granted", rowId });
    assert.deepEqual(await p.decide(id, "example.com", 8050), { allowed: false, reason: "no_permission" });
    assert.deepEqual(await p.decide(id, "api.example.com", 8101), { allowed: false, reason: "no_permission" });
    assert.deepEqual(await p.decide(who(), "api.example.com", 8050), { allowed: false, reason: "no_permission" });
  });

  test("revoking a row stops new tunnels at once (by NOTIFY, not the cache's expiry) and tells onRevoke listeners", async (t) => {
    const id = who();
    const rowId = await grant(f, { identity: id, dest: "db.internal", ports: "5432", key }, systemClock.wallNow());
    // Opened after the insert, so the insert's own notification cannot race the cache. Its clock never
    // moves, so the cached grant can never expire: only the revoke's NOTIFY can end it, however long
    // a loaded machine takes to deliver it.
    const p = await open({ cacheTtlMs: 60_000, clock: new ManualClock(0, systemClock.wallNow()), ...MANUAL });
    assert.equal((await p.decide(id, "db.internal", 5432)).allowed, true);
    assert.equal((await p.decide(id, "db.internal", 5432)).allowed, true);
    assert.equal(p.stats().cacheHits, 1, "the second decision came from the cache");
    const revoked: [string, string][] = [];
    p.onRevoke((identity, row) => revoked.push([identity, row]));
    const t0 = performance.now();
    await f.db.query(`DELETE FROM ${f.schema}.portcullis_permissions WHERE id = $1`, [rowId]);
    await waitUntil(async () => !(await p.decide(id, "db.internal", 5432)).allowed, { timeoutMs: 20_000, intervalMs: 10, message: "the revoke to take effect" });
    t.diagnostic(`the revoke took effect after ${(performance.now() - t0).toFixed(0)} ms`);
    assert.deepEqual(await p.decide(id, "db.internal", 5432), { allowed: false, reason: "no_permission" });
    await waitUntil(() => revoked.length > 0, { timeoutMs: 20_000, intervalMs: 10, message: "onRevoke" });
    assert.deepEqual(revoked, [[id, rowId]]);
  });

  test("a new grant takes effect at once even where a denial was cached", async () => {
    // A clock that never moves: the cached denial never expires, so only the grant's NOTIFY can lift it.
    const p = await open({ cacheTtlMs: 60_000, clock: new ManualClock(0, systemClock.wallNow()), ...MANUAL });
    const id = who();
    assert.equal((await p.decide(id, "new.example.com", 443)).allowed, false);
    await grant(f, { identity: id, dest: "new.example.com", ports: "443", key }, systemClock.wallNow());
    await waitUntil(async () => (await p.decide(id, "new.example.com", 443)).allowed, { timeoutMs: 20_000, intervalMs: 10, message: "the grant to take effect" });
  });

  test("tampering with any column in SQL makes the row grant nothing", async () => {
    const p = await open({ cacheTtlMs: 0 });
    const other = generateSigningKey();
    const trusted = await open({ cacheTtlMs: 0, keyring: new Keyring([key.publicKey, other.publicKey]) });
    const t = `${f.schema}.portcullis_permissions`;
    const tampers: { set: string; reason: string; identity?: (id: string) => string; policy?: PgPermissionPolicy }[] = [
      { set: "id = gen_random_uuid()", reason: "bad_signature" },
      { set: "identity = identity || '-x'", reason: "bad_signature", identity: (id) => `${id}-x` },
      { set: "host_pattern = '*.internal'", reason: "bad_signature" },
      { set: "port_min = 1", reason: "bad_signature" },
      { set: "port_max = 9999", reason: "bad_signature" },
      { set: "cidr = '127.0.0.0/8'", reason: "bad_signature" },
      { set: "not_before = not_before - interval '1 microsecond'", reason: "bad_signature" },
      { set: "expires_at = expires_at + interval '1 microsecond'", reason: "bad_signature" },
      { set: "expires_at = 'infinity'", reason: "malformed" },
      { set: "created_by = 'mallory'", reason: "bad_signature" },
      { set: `key_id = '${other.keyId}'`, reason: "bad_signature", policy: trusted },
      { set: "key_id = '0000000000000000'", reason: "unknown_key" },
      { set: "signature = set_byte(signature, 0, get_byte(signature, 0) # 1)", reason: "bad_signature" },
      { set: "signature = NULL", reason: "unsigned" },
    ];
    for (const tamper of tampers) {
      const id = who();
      const rowId = await grant(f, { identity: id, dest: "svc.internal", ports: "443", key }, systemClock.wallNow());
      const policy = tamper.policy ?? p;
      assert.equal((await policy.decide(id, "svc.internal", 443)).allowed, true, tamper.set);
      await f.db.query(`UPDATE ${t} SET ${tamper.set} WHERE id = $1`, [rowId]);
      const asked = tamper.identity ? tamper.identity(id) : id;
      assert.deepEqual(await policy.decide(asked, "svc.internal", 443, "127.0.0.1"), { allowed: false, reason: tamper.reason }, tamper.set);
    }
    assert.equal(p.stats().rejectedRows.bad_signature, 10);
  });

  test("a row signed by an unknown key grants nothing, and is counted and logged without its destination", async () => {
    const logger = new RecordingLogger();
    const p = await open({ logger });
    const id = who();
    const stranger = generateSigningKey();
    const rowId = await grant(f, { identity: id, dest: "secret.example.com", ports: "443", key: stranger }, systemClock.wallNow());
    assert.deepEqual(await p.decide(id, "secret.example.com", 443, "10.9.8.7"), { allowed: false, reason: "unknown_key" });
    assert.equal(p.stats().rejectedRows.unknown_key, 1);
    const warn = logger.lines.find((l) => l.msg === "permission row rejected");
    assert.deepEqual(warn?.fields, { reason: "unknown_key", row_id: rowId, identity: id, key_id: stranger.keyId });
    const all = JSON.stringify(logger.lines);
    assert.ok(!all.includes("secret.example.com") && !all.includes("10.9.8.7") && !all.includes("443"), all);
  });

  test("with destination auditing on, rejected rows are logged with the destination", async () => {
    const logger = new RecordingLogger();
    const p = await open({ logger, auditDestinations: true });
    const id = who();
    await grant(f, { identity: id, dest: "*.audit.example.com", ports: "443", key: generateSigningKey() }, systemClock.wallNow());
    await p.decide(id, "x.audit.example.com", 443);
    const warn = logger.lines.find((l) => l.msg === "permission row rejected");
    assert.equal(warn?.fields.destination, "x.audit.example.com:443");
    assert.equal(warn?.fields.host_pattern, "*.audit.example.com");
  });

  test("key rotation: rows of every trusted key grant; dropping the old key disables its rows", async () => {
    const oldKey = key;
    const newKey = generateSigningKey();
    const both = await open({ keyring: new Keyring([oldKey.publicKey, newKey.publicKey]) });
    const id = who();
    const now = systemClock.wallNow();
    const oldRow = await grant(f, { identity: id, dest: "old.example.com", ports: "443", key: oldKey }, now);
    const newRow = await grant(f, { identity: id, dest: "new.example.com", ports: "443", key: newKey }, now);
    assert.deepEqual(await both.decide(id, "old.example.com", 443), { allowed: true, reason: "granted", rowId: oldRow });
    assert.deepEqual(await both.decide(id, "new.example.com", 443), { allowed: true, reason: "granted", rowId: newRow });
    const rotated = await open({ keyring: new Keyring([newKey.publicKey]) });
    assert.deepEqual(await rotated.decide(id, "old.example.com", 443), { allowed: false, reason: "unknown_key" });
    assert.deepEqual(await rotated.decide(id, "new.example.com", 443), { allowed: true, reason: "granted", rowId: newRow });
    // Re-signing the old grant with the new key restores it under the rotated keyring.
    const resigned = await grant(f, { identity: id, dest: "old.example.com", ports: "443", key: newKey }, now);
    await waitUntil(async () => (await rotated.decide(id, "old.example.com", 443)).rowId === resigned, { timeoutMs: 20_000, intervalMs: 10, message: "the re-signed row" });
  });

  test("not_before and expires_at bound a row, on the injected clock, also for cached lookups", async () => {
    const start = systemClock.wallNow();
    const clock = new ManualClock(0, start);
    const id = who();
    const s = signGrant({ identity: id, dest: "later.example.com", ports: "443", notBeforeMs: start + 1000, expiresMs: start + 3000, createdBy: "t", key });
    await insertPermission(f.db, f.schema, s.fields, s.signature);
    const p = await open({ clock, cacheTtlMs: 5000, ...MANUAL });
    assert.deepEqual(await p.decide(id, "later.example.com", 443), { allowed: false, reason: "not_yet_valid" });
    assert.equal(p.stats().rejectedRows.not_yet_valid, 1);
    clock.advance(999);
    assert.equal((await p.decide(id, "later.example.com", 443)).allowed, false);
    clock.advance(1);
    assert.deepEqual(await p.decide(id, "later.example.com", 443), { allowed: true, reason: "granted", rowId: s.fields.id });
    clock.advance(1999);
    assert.equal((await p.decide(id, "later.example.com", 443)).allowed, true);
    clock.advance(1);
    assert.deepEqual(await p.decide(id, "later.example.com", 443), { allowed: false, reason: "expired" });
    assert.equal(p.stats().lookups, 1, "every answer after the first came from the cached rows");
    clock.advance(5000);
    assert.deepEqual(await p.decide(id, "later.example.com", 443), { allowed: false, reason: "expired" });
    assert.equal(p.stats().rejectedRows.expired, 1);
  });

  test("cached lookups last for the TTL; without NOTIFY a change shows only after it", async () => {
    const clock = new ManualClock(0, systemClock.wallNow());
    const id = who();
    const rowId = await grant(f, { identity: id, dest: "ttl.example.com", ports: "443", key }, clock.wallNow());
    const p = await open({ clock, cacheTtlMs: 5000, ...MANUAL });
    assert.equal((await p.decide(id, "ttl.example.com", 443)).allowed, true);
    await f.db.query(`ALTER TABLE ${f.schema}.portcullis_permissions DISABLE TRIGGER portcullis_permissions_changed`);
    try {
      await f.db.query(`DELETE FROM ${f.schema}.portcullis_permissions WHERE id = $1`, [rowId]);
    } finally {
      await f.db.query(`ALTER TABLE ${f.schema}.portcullis_permissions ENABLE TRIGGER portcullis_permissions_changed`);
    }
    clock.advance(4999);
    assert.equal((await p.decide(id, "ttl.example.com", 443)).allowed, true);
    clock.advance(1);
    assert.deepEqual(await p.decide(id, "ttl.example.com", 443), { allowed: false, reason: "no_permission" });
    assert.deepEqual([p.stats().cacheHits, p.stats().lookups], [1, 2]);
  });

  test("a CIDR-bound row grants only when the resolved address is inside the network", async () => {
    const p = await open();
    const id = who();
    const rowId = await grant(f, { identity: id, dest: "*", ports: "443", cidr: "127.0.0.0/8", key }, systemClock.wallNow());
    assert.deepEqual(await p.decide(id, "anything.test", 443, "127.0.0.9"), { allowed: true, reason: "granted", rowId });
    assert.deepEqual(await p.decide(id, "anything.test", 443, "10.0.0.1"), { allowed: false, reason: "address_not_permitted" });
    assert.deepEqual(await p.decide(id, "anything.test", 443), { allowed: false, reason: "address_not_permitted" });
  });

  test("concurrent misses for one destination share a single query", async () => {
    const id = who();
    await grant(f, { identity: id, dest: "hot.example.com", ports: "443", key }, systemClock.wallNow());
    const p = await open();
    const answers = await Promise.all(Array.from({ length: 200 }, () => p.decide(id, "hot.example.com", 443)));
    assert.ok(answers.every((a) => a.allowed));
    assert.equal(p.stats().lookups, 1);
  });

  test("a change during a lookup: its answer is not cached, and later callers do not join it", async () => {
    const id = who();
    await grant(f, { identity: id, dest: "*.race.example.com", ports: "443", key }, systemClock.wallNow());
    const app = `race-${f.schema}`;
    const p = await open({ clientConfig: { connectionString: f.url, application_name: app } });
    const locker = new pg.Client({ connectionString: f.url });
    await locker.connect();
    /** Runs `during` while a lookup is held up by a table lock and a change to `id` has been announced. */
    async function race(host: string, during: () => Promise<unknown> | undefined): Promise<void> {
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE ${f.schema}.portcullis_permissions IN ACCESS EXCLUSIVE MODE`);
      const first = p.decide(id, host, 443);
      await waitUntil(async () => {
        const r = await f.db.query("SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", [app]);
        return r.rowCount === 1;
      }, { timeoutMs: 5000, intervalMs: 10, message: "the lookup to block" });
      const seen = p.stats().notifications;
      await f.db.query("SELECT pg_notify('portcullis_permissions', $1)", [JSON.stringify({ schema: f.schema, op: "INSERT", id: "00000000-0000-4000-8000-000000000000", identity: id })]);
      await waitUntil(() => p.stats().notifications > seen, { timeoutMs: 1000, intervalMs: 10, message: "the notification" });
      const alongside = during();
      await locker.query("ROLLBACK");
      assert.equal((await first).allowed, true);
      await alongside;
    }
    try {
      await race("a.race.example.com", () => undefined);
      assert.equal(p.stats().lookups, 1);
      assert.equal((await p.decide(id, "a.race.example.com", 443)).allowed, true);
      assert.equal(p.stats().lookups, 2, "the answer of the lookup that overlapped the change was not cached");
      // Now with a second caller arriving after the change: it must not share the stale lookup.
      const before = p.stats().lookups;
      await race("b.race.example.com", () => p.decide(id, "b.race.example.com", 443).then((d) => assert.equal(d.allowed, true)));
      assert.equal(p.stats().lookups, before + 2, "the second caller ran its own lookup");
    } finally {
      await locker.end();
    }
  });

  test("lookups beyond maxPendingLookups are denied rather than queued without bound", async () => {
    const p = await open({ maxPendingLookups: 1 });
    const id = who();
    const answers = await Promise.all([p.decide(id, "a.example.com", 443), p.decide(id, "b.example.com", 443)]);
    assert.deepEqual(answers.map((a) => a.reason), ["no_permission", "policy_overloaded"]);
  });

  test("an update of a granting row and a truncate report revocations", async () => {
    const p = await open();
    const id = who();
    const now = systemClock.wallNow();
    const a = await grant(f, { identity: id, dest: "a.example.com", ports: "443", key }, now);
    const revoked: string[] = [];
    p.onRevoke((_identity, rowId) => revoked.push(rowId));
    await f.db.query(`UPDATE ${f.schema}.portcullis_permissions SET created_by = 'x' WHERE id = $1`, [a]);
    await waitUntil(() => revoked.includes(a), { timeoutMs: 1000, intervalMs: 10, message: "revocation by update" });
    const b = await grant(f, { identity: id, dest: "b.example.com", ports: "443", key }, now);
    assert.equal((await p.decide(id, "b.example.com", 443)).allowed, true);
    await f.db.query(`ALTER TABLE ${f.schema}.portcullis_permissions DISABLE TRIGGER portcullis_permissions_changed`);
    try {
      await f.db.query(`DELETE FROM ${f.schema}.portcullis_permissions WHERE identity = $1`, [id]);
    } finally {
      await f.db.query(`ALTER TABLE ${f.schema}.portcullis_permissions ENABLE TRIGGER portcullis_permissions_changed`);
    }
    // A truncate of another table in the same schema does nothing; of this one, reconciles what was granted.
    await f.db.query(`CREATE TABLE IF NOT EXISTS ${f.schema}.scratch_t (x int)`);
    await f.db.query(`TRUNCATE ${f.schema}.scratch_t`);
    await f.db.query(`BEGIN; CREATE TEMP TABLE keep AS SELECT * FROM ${f.schema}.portcullis_permissions; TRUNCATE ${f.schema}.portcullis_permissions; INSERT INTO ${f.schema}.portcullis_permissions SELECT * FROM keep; DROP TABLE keep; COMMIT`);
    await waitUntil(() => revoked.includes(b), { timeoutMs: 1000, intervalMs: 10, message: "revocation found by reconciling after truncate" });
  });

  test("a failing query (here: no table in the schema) denies, is logged once, and does not flap readiness", async () => {
    const logger = new RecordingLogger();
    const p = await open({ schema: `${f.schema}_missing`, logger });
    for (let i = 0; i < 3; i++) assert.deepEqual(await p.decide(`id-${i}`, "a.example.com", 443), { allowed: false, reason: "policy_unavailable" });
    assert.equal(p.ready(), true);
    assert.equal(p.stats().lookupErrors, 3);
    const warns = logger.lines.filter((l) => l.msg === "permission lookup failed; denying");
    assert.equal(warns.length, 1);
    assert.match(String(warns[0]!.fields.error), /does not exist/);
  });

  test("bad input is denied, never thrown", async () => {
    const p = await open();
    assert.deepEqual(await p.decide("", "a.example.com", 443), { allowed: false, reason: "invalid_identity" });
    assert.deepEqual(await p.decide("x".repeat(2000), "a.example.com", 443), { allowed: false, reason: "invalid_identity" });
    assert.deepEqual(await p.decide("a", "bad host", 443), { allowed: false, reason: "invalid_destination" });
    assert.deepEqual(await p.decide("a", "a.example.com", 0), { allowed: false, reason: "invalid_destination" });
    assert.deepEqual(await p.decide("a", "a.example.com", 1.5), { allowed: false, reason: "invalid_destination" });
    assert.deepEqual(await p.decide("a", "a.example.com", 443, "not-an-ip"), { allowed: false, reason: "no_permission" });
  });

  test("after close, nothing is granted and readiness is false", async () => {
    const p = await open();
    const id = who();
    await grant(f, { identity: id, dest: "c.example.com", ports: "443", key }, systemClock.wallNow());
    assert.equal((await p.decide(id, "c.example.com", 443)).allowed, true);
    await p.close();
    assert.equal(p.ready(), false);
    assert.deepEqual(await p.decide(id, "c.example.com", 443), { allowed: false, reason: "closed" });
  });
});
