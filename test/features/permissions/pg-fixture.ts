import { randomBytes } from "node:crypto";
import pg from "pg";
import { migrate } from "../../../src/features/permissions/migrate.js";
import { insertPermission } from "../../../src/features/permissions/table.js";
import { signGrant, type GrantRequest } from "../../../src/features/permissions/grant.js";

export const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** A migrated schema of its own, so test files can run in parallel; drop() removes it. */
export interface PgFixture {
  readonly url: string;
  readonly schema: string;
  readonly db: pg.Client;
  drop(): Promise<void>;
}

export async function pgFixture(prefix: string, url = DATABASE_URL): Promise<PgFixture> {
  const schema = `t_${prefix}_${randomBytes(4).toString("hex")}`;
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  await migrate(db, schema);
  return {
    url,
    schema,
    db,
    async drop() {
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
      await db.end().catch(() => {});
    },
  };
}

const HOUR = 3_600_000;

/** Signs and inserts a grant; times default to valid from an hour before `nowMs` to an hour after. */
export async function grant(
  f: PgFixture,
  r: Partial<GrantRequest> & Pick<GrantRequest, "identity" | "dest" | "ports" | "key">,
  nowMs: number,
): Promise<string> {
  const signed = signGrant({ notBeforeMs: nowMs - HOUR, expiresMs: nowMs + HOUR, createdBy: "test-authority", ...r });
  await insertPermission(f.db, f.schema, signed.fields, signed.signature);
  return signed.fields.id;
}
