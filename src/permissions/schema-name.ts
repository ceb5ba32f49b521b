import pg from "pg";
import { InvalidArgumentError } from "../core/errors.js";

/**
 * The PostgreSQL schema that holds the permission table. Restricted to plain
 * identifiers (no quoting games), then quoted by pg's own escaping.
 */
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export function quotedSchema(schema: string): string {
  if (!NAME.test(schema)) throw new InvalidArgumentError("schema", `must be a plain identifier, got ${JSON.stringify(schema).slice(0, 80)}`);
  return pg.escapeIdentifier(schema);
}

export const PERMISSIONS_TABLE = "portcullis_permissions";
export const MIGRATIONS_TABLE = "portcullis_migrations";
export const NOTIFY_CHANNEL = "portcullis_permissions";
