/**
 * Applies the SQL files in migrations/ (named NNNN_name.sql) in order, each
 * at most once per schema. Bookkeeping lives in portcullis_migrations, in the
 * same schema, with each file's SHA-256 so an edited, already-applied
 * migration is reported instead of silently diverging. Everything runs in
 * one transaction under an advisory lock, so two gateways migrating at once
 * neither interleave nor half-apply.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type pg from "pg";
import { PortcullisError } from "../../core/errors.js";
import { MIGRATIONS_TABLE, quotedSchema } from "./schema-name.js";

export const MIGRATIONS_DIR = fileURLToPath(new URL("../../../migrations/", import.meta.url));

export interface Migration {
  readonly version: string;
  readonly name: string;
  readonly sql: string;
  readonly sha256: string;
}

export interface MigrateResult {
  readonly applied: string[];
  readonly alreadyApplied: string[];
}

export class MigrationError extends PortcullisError {
  constructor(message: string) {
    super(message, "migration");
  }
}

const FILE = /^([0-9]{4})_([a-z0-9_]+)\.sql$/;

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .map((f) => ({ f, m: FILE.exec(f) }))
    .filter((x): x is { f: string; m: RegExpExecArray } => x.m !== null)
    .sort((a, b) => a.f.localeCompare(b.f))
    .map(({ f, m }) => {
      const sql = readFileSync(`${dir}/${f}`, "utf8");
      return { version: m[1]!, name: m[2]!, sql, sha256: createHash("sha256").update(sql).digest("hex") };
    });
}

export async function migrate(client: pg.ClientBase, schema = "public", migrations = loadMigrations()): Promise<MigrateResult> {
  const s = quotedSchema(schema);
  const applied: string[] = [];
  const alreadyApplied: string[] = [];
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock(hashtext('portcullis_migrations'), hashtext($1))", [schema]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await client.query(`SET LOCAL search_path TO ${s}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (
      version    text PRIMARY KEY,
      name       text NOT NULL,
      sha256     text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const done = new Map<string, string>();
    for (const r of (await client.query<{ version: string; sha256: string }>(`SELECT version, sha256 FROM ${MIGRATIONS_TABLE}`)).rows) {
      done.set(r.version, r.sha256);
    }
    for (const m of migrations) {
      const sha = done.get(m.version);
      if (sha !== undefined) {
        if (sha !== m.sha256) throw new MigrationError(`migration ${m.version}_${m.name} was changed after it was applied to schema ${schema}`);
        alreadyApplied.push(`${m.version}_${m.name}`);
        continue;
      }
      await client.query(m.sql);
      await client.query(`INSERT INTO ${MIGRATIONS_TABLE} (version, name, sha256) VALUES ($1, $2, $3)`, [m.version, m.name, m.sha256]);
      applied.push(`${m.version}_${m.name}`);
    }
    await client.query("COMMIT");
  } catch (e) {
    await client.query("ROLLBACK").catch(() => {});
    throw e;
  }
  return { applied, alreadyApplied };
}
