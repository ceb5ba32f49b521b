/**
 * SQL access to the permission table. Times are read as exact integer
 * microseconds (text, to keep all 64 bits): reading them through a JS Date
 * would drop the microseconds, and a tampered row differing only there would
 * verify. A time that is not finite reads as null, which verifies as malformed.
 */
import type pg from "pg";
import type { PermissionFields, PermissionRow } from "./permission.js";
import { PERMISSIONS_TABLE, quotedSchema } from "./schema-name.js";

type Queryable = Pick<pg.ClientBase, "query">;

const us = (col: string) => `CASE WHEN isfinite(${col}) THEN (extract(epoch FROM ${col}) * 1000000)::int8::text END`;

const COLUMNS = `id::text AS id, identity, host_pattern, port_min, port_max, cidr,
  ${us("not_before")} AS not_before_us, ${us("expires_at")} AS expires_at_us,
  created_by, key_id, signature`;

interface DbRow {
  id: string;
  identity: string;
  host_pattern: string;
  port_min: number;
  port_max: number;
  cidr: string | null;
  not_before_us: string | null;
  expires_at_us: string | null;
  created_by: string;
  key_id: string | null;
  signature: Buffer | null;
}

function fromDb(r: DbRow): PermissionRow {
  return {
    id: r.id,
    identity: r.identity,
    hostPattern: r.host_pattern,
    portMin: r.port_min,
    portMax: r.port_max,
    cidr: r.cidr,
    notBeforeUs: r.not_before_us === null ? null : BigInt(r.not_before_us),
    expiresAtUs: r.expires_at_us === null ? null : BigInt(r.expires_at_us),
    createdBy: r.created_by,
    keyId: r.key_id,
    signature: r.signature,
  };
}

export function tableName(schema: string): string {
  return `${quotedSchema(schema)}.${PERMISSIONS_TABLE}`;
}

/** A microsecond count as a timestamptz, exactly (no float on the way). */
const TS = (n: number) => `('epoch'::timestamptz + $${n}::int8 * interval '1 microsecond')`;

export async function insertPermission(db: Queryable, schema: string, f: PermissionFields, signature: Buffer | null): Promise<void> {
  await db.query(
    `INSERT INTO ${tableName(schema)}
       (id, identity, host_pattern, port_min, port_max, cidr, not_before, expires_at, created_by, key_id, signature)
     VALUES ($1, $2, $3, $4, $5, $6, ${TS(7)}, ${TS(8)}, $9, $10, $11)`,
    [f.id, f.identity, f.hostPattern, f.portMin, f.portMax, f.cidr, f.notBeforeUs.toString(), f.expiresAtUs.toString(), f.createdBy, f.keyId, signature],
  );
}

/** Deletes a row; returns its identity, or undefined when there was no such row. */
export async function deletePermission(db: Queryable, schema: string, id: string): Promise<string | undefined> {
  const r = await db.query<{ identity: string }>(`DELETE FROM ${tableName(schema)} WHERE id = $1 RETURNING identity`, [id]);
  return r.rows[0]?.identity;
}

export async function listPermissions(db: Queryable, schema: string): Promise<PermissionRow[]> {
  const r = await db.query<DbRow>(`SELECT ${COLUMNS} FROM ${tableName(schema)} ORDER BY identity, host_pattern, port_min, id`);
  return r.rows.map(fromDb);
}

/** The rows that might grant `identity` access to `port`: the gateway's one query per cache miss. */
export async function candidateRows(db: Queryable, schema: string, identity: string, port: number, limit: number): Promise<PermissionRow[]> {
  const r = await db.query<DbRow>(
    `SELECT ${COLUMNS} FROM ${tableName(schema)} WHERE identity = $1 AND port_min <= $2 AND port_max >= $2 LIMIT ${Math.floor(limit)}`,
    [identity, port],
  );
  return r.rows.map(fromDb);
}

/** The signatures of the given rows that still exist (for checking which granted rows were removed while unobserved). */
export async function currentSignatures(db: Queryable, schema: string, ids: readonly string[]): Promise<Map<string, string>> {
  const r = await db.query<{ id: string; sig: string | null }>(
    `SELECT id::text AS id, encode(signature, 'hex') AS sig FROM ${tableName(schema)} WHERE id = ANY($1::uuid[])`,
    [ids],
  );
  return new Map(r.rows.map((x) => [x.id, x.sig ?? ""]));
}
