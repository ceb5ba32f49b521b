/** The PostgreSQL schema name of the permission table: checked, then quoted. */
import { InvalidArgumentError } from "../../core/errors.js";

/**
 * The PostgreSQL schema that holds the permission table. Restricted to plain
 * identifiers (no quoting games), then quoted as an identifier. No pg import:
 * the config schema reads this module, and a gateway without permissions
 * must not load the PostgreSQL client.
 */
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export function quotedSchema(schema: string): string {
  if (!NAME.test(schema)) throw new InvalidArgumentError("schema", `must be a plain identifier, got ${JSON.stringify(schema).slice(0, 80)}`);
  // The pattern admits no quote, so quoting is wrapping (what pg.escapeIdentifier does to such a name).
  return `"${schema}"`;
}

export const PERMISSIONS_TABLE = "portcullis_permissions";
export const MIGRATIONS_TABLE = "portcullis_migrations";
export const NOTIFY_CHANNEL = "portcullis_permissions";
