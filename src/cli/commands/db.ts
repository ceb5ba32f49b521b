/** The `db` command: manages the PostgreSQL schema of the permission table. */
import { parseArgs } from "node:util";
import { isDatabaseError, pgModule } from "../../features/permissions/pg-module.js";
import { PortcullisError } from "../../core/errors.js";
import { migrate } from "../../features/permissions/migrate.js";

export const summary = "manage the PostgreSQL schema (migrate)";

/** Where a command writes, and the environment it reads: process's by default, replaceable in tests. */
export interface CommandIo {
  out(line: string): void;
  err(line: string): void;
  env: Record<string, string | undefined>;
}

const processIo: CommandIo = { out: (l) => console.log(l), err: (l) => console.error(l), env: process.env };

const HELP = `usage: portcullis db migrate [--url URL] [--schema NAME]

Creates or updates the tables Portcullis keeps in PostgreSQL (the signed
permission table and its change trigger). Safe to run again: applied
migrations are recorded in portcullis_migrations and skipped.

options:
  --url URL       PostgreSQL URL (default: $DATABASE_URL)
  --schema NAME   schema to migrate (default: public; created if missing)`;

export async function main(argv: string[], io: CommandIo = processIo): Promise<number> {
  const usage = (msg: string) => {
    io.err(`portcullis db: ${msg} (try --help)`);
    return 2;
  };
  let values: { url?: string; schema?: string; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: { url: { type: "string" }, schema: { type: "string" }, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    }));
  } catch (e) {
    return usage((e as Error).message.split("\n")[0]!);
  }
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const [sub, ...extra] = positionals;
  if (sub !== "migrate") return usage(sub === undefined ? "missing subcommand: migrate" : `unknown subcommand "${sub}"`);
  if (extra.length > 0) return usage(`unexpected argument "${extra[0]}"`);
  const url = values.url ?? io.env.DATABASE_URL;
  if (!url) return usage("--url is required (or set DATABASE_URL)");
  const schema = values.schema ?? "public";
  const client = new (pgModule("portcullis db").Client)({ connectionString: url, connectionTimeoutMillis: 10_000 });
  client.on("error", () => {});
  try {
    await client.connect();
  } catch (e) {
    io.err(`portcullis db: cannot connect to PostgreSQL: ${(e as Error).message}`);
    return 1;
  }
  try {
    const r = await migrate(client, schema);
    for (const m of r.applied) io.out(`applied ${m}`);
    io.out(r.applied.length === 0 ? `schema ${schema} is up to date (${r.alreadyApplied.length} migrations)` : `schema ${schema} migrated`);
    return 0;
  } catch (e) {
    const known = e instanceof PortcullisError || isDatabaseError(e);
    io.err(`portcullis db: migrate failed: ${known ? (e as Error).message : String(e)}`);
    return e instanceof PortcullisError && e.code === "invalid_argument" ? 2 : 1;
  } finally {
    await client.end().catch(() => {});
  }
}
