import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { loadMigrations, migrate } from "../../../src/features/permissions/migrate.js";
import { DATABASE_URL } from "./pg-fixture.js";
import { waitUntil } from "../../helpers/wait.js";

describe("migrations", () => {
  const schema = `t_migrate_${randomBytes(4).toString("hex")}`;
  let db: pg.Client;
  let listener: pg.Client;

  before(async () => {
    db = new pg.Client({ connectionString: DATABASE_URL });
    listener = new pg.Client({ connectionString: DATABASE_URL });
    await db.connect();
    await listener.connect();
  });

  after(async () => {
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end();
    await listener.end();
  });

  test("apply once, record each file with its checksum, then do nothing", async () => {
    const files = loadMigrations();
    assert.ok(files.length >= 1);
    const first = await migrate(db, schema);
    assert.deepEqual(first.applied, files.map((m) => `${m.version}_${m.name}`));
    const second = await migrate(db, schema);
    assert.deepEqual(second, { applied: [], alreadyApplied: first.applied });
    const rows = (await db.query(`SELECT version, sha256 FROM ${schema}.portcullis_migrations ORDER BY version`)).rows;
    assert.deepEqual(rows, files.map((m) => ({ version: m.version, sha256: m.sha256 })));
  });

  test("concurrent migrations of one schema serialise instead of failing", async () => {
    const other = `t_migrate_${randomBytes(4).toString("hex")}`;
    const clients = await Promise.all([0, 1, 2].map(async () => {
      const c = new pg.Client({ connectionString: DATABASE_URL });
      await c.connect();
      return c;
    }));
    try {
      const results = await Promise.all(clients.map((c) => migrate(c, other)));
      assert.equal(results.filter((r) => r.applied.length > 0).length, 1);
    } finally {
      await db.query(`DROP SCHEMA IF EXISTS ${other} CASCADE`);
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  test("a migration edited after it was applied is reported, not re-run", async () => {
    const edited = loadMigrations().map((m, i) => (i === 0 ? { ...m, sha256: "0".repeat(64) } : m));
    await assert.rejects(migrate(db, schema, edited), /was changed after it was applied/);
  });

  test("the trigger notifies inserts, updates, deletes and truncates with schema, id and identity", async () => {
    const got: Record<string, unknown>[] = [];
    listener.on("notification", (n) => got.push(JSON.parse(n.payload!) as Record<string, unknown>));
    await listener.query("LISTEN portcullis_permissions");
    const id = "11111111-2222-4333-8444-555555555555";
    const t = `${schema}.portcullis_permissions`;
    await db.query(
      `INSERT INTO ${t} (id, identity, host_pattern, port_min, port_max, not_before, expires_at, created_by) VALUES ($1, 'alice', 'a.test', 1, 2, now(), now() + interval '1 hour', 'x')`,
      [id],
    );
    await db.query(`UPDATE ${t} SET identity = 'bob' WHERE id = $1`, [id]);
    await db.query(`DELETE FROM ${t} WHERE id = $1`, [id]);
    await db.query(`TRUNCATE ${t}`);
    await waitUntil(() => got.filter((g) => g.schema === schema).length >= 4, { timeoutMs: 5000, intervalMs: 10, message: "4 notifications" });
    assert.deepEqual(got.filter((g) => g.schema === schema), [
      { schema, op: "INSERT", id, identity: "alice", old_identity: null },
      { schema, op: "UPDATE", id, identity: "bob", old_identity: "alice" },
      { schema, op: "DELETE", id, identity: "bob", old_identity: null },
      { schema, op: "TRUNCATE" },
    ]);
  });

  test("the table refuses a signature that is not 64 bytes", async () => {
    await assert.rejects(
      db.query(
        `INSERT INTO ${schema}.portcullis_permissions (id, identity, host_pattern, port_min, port_max, not_before, expires_at, created_by, signature)
         VALUES (gen_random_uuid(), 'a', 'a.test', 1, 2, now(), now(), 'x', '\\x00')`,
      ),
      /check constraint/,
    );
  });
});
