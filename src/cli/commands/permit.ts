/** The `permit` command: signs, grants, revokes, lists and verifies destination permissions. */
import { mkdirSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import type pg from "pg";
import { isDatabaseError, pgModule } from "../../features/permissions/pg-module.js";
import { systemClock } from "../../core/clock.js";
import { InvalidArgumentError, PortcullisError } from "../../core/errors.js";
import { signGrant } from "../../features/permissions/grant.js";
import { generateSigningKey, Keyring, loadPrivateKey, privateKeyPem, publicKeyPem } from "../../features/permissions/signing-keys.js";
import type { PermissionRow } from "../../features/permissions/permission.js";
import { formatPortRange } from "../../features/permissions/port-range.js";
import { checkIntegrity, timeState } from "../../features/permissions/signature.js";
import { deletePermission, insertPermission, listPermissions } from "../../features/permissions/table.js";
import { parseTimeArg } from "../../features/permissions/time-arg.js";
import type { CommandIo } from "./db.js";
import { ArgsError, parseCommandArgs } from "../args.js";
import { ConfigTargetError, type PolicyTarget, policyTarget } from "../config-target.js";

export const summary = "sign, grant, revoke, list and verify destination permissions";

const processIo: CommandIo = { out: (l) => console.log(l), err: (l) => console.error(l), env: process.env };

const DB_OPTIONS = `  -c, --config FILE a gateway's configuration: the URL, schema (and for verify
                    the public keys) of its connect listener's postgres policy
  --listener NAME   with -c, the listener to read when several have a policy
  --url URL         PostgreSQL URL (default: from -c FILE, else $DATABASE_URL)
  --schema NAME     schema holding the permission table (default: from -c FILE,
                    else public)`;

const HELP: Record<string, string> = {
  "": `usage: portcullis permit <keygen|grant|revoke|list|verify> [options]

The permission authority's tool. Each row of the permission table lets one
identity reach destinations matching a host pattern on a port range, for a
time window, and is signed with the authority's Ed25519 key; gateways verify
every row with the public keys they trust.

  keygen   make a signing key pair
  grant    sign and insert a permission
  revoke   delete a permission (live tunnels it admitted can be closed)
  list     print the permission table
  verify   check every row's signature (exit 1 if any fails)

Run \`portcullis permit <subcommand> --help\` for its options.`,
  keygen: `usage: portcullis permit keygen --out DIR

Writes a new Ed25519 key pair to DIR as permit-<key id>.key.pem (private,
mode 0600: keep it with the authority) and permit-<key id>.pub.pem (public:
give it to the gateways). The key id is the first 16 hex digits of the
SHA-256 of the raw public key.`,
  grant: `usage: portcullis permit grant --identity ID --dest HOSTPATTERN --ports PORTS --expires T --key PRIVATE.pem [options]

  --identity ID      identity from the client certificate (CN or SAN URI)
  --dest PATTERN     host, *.domain (any depth below it), * (any), or an IP address
  --ports PORTS      443 or 8000-8100
  --cidr CIDR        also require the resolved address to be in this network
  --not-before T     start of validity (default: now)
  --expires T        end of validity (required)
  --key FILE         the authority's private key (PEM)
  --created-by NAME  recorded on the row (default: the current user)
${DB_OPTIONS}

T is an ISO 8601 time with a zone (2026-12-01T00:00:00Z), a date (midnight
UTC), "now", or an offset from now: 90s, 15m, 12h, 30d.
Prints the id of the new row.`,
  revoke: `usage: portcullis permit revoke --id ID

Deletes the permission; gateways stop admitting new tunnels under it within
a second and, with revoke_closes_tunnels, close the ones it admitted.
${DB_OPTIONS}`,
  list: `usage: portcullis permit list [--json]

Prints every row: id, identity, destination pattern, ports, cidr, validity,
creator and key id. --json prints one JSON object per line.
${DB_OPTIONS}`,
  verify: `usage: portcullis permit verify [--public-key FILE [FILE...]]

Checks every row against the trusted public keys (the same check gateways
make) and prints each row that fails: unsigned, malformed, unknown_key or
bad_signature. Exits 1 if any row fails, 0 otherwise. Rows that verify but
are expired or not yet valid are listed as notes and do not fail.
  --public-key FILE  a trusted public key (PEM); repeat, or list several
                     (default with -c FILE: the listener's policy.public_key)
${DB_OPTIONS}`,
};

class UsageError extends Error {}

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(argv: string[], options: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }>, positionals = false) {
  try {
    return parseCommandArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals: positionals }) as {
      values: Values;
      positionals: string[];
    };
  } catch (e) {
    throw new UsageError(e instanceof ArgsError ? e.message : String(e));
  }
}

function required(v: Values, name: string): string {
  const x = v[name];
  if (typeof x !== "string" || x === "") throw new UsageError(`--${name} is required`);
  return x;
}

/** The permission table named by -c FILE (the gateway's own policy), read once per command. */
function fromConfig(v: Values, io: CommandIo): PolicyTarget | undefined {
  if (typeof v.config !== "string") {
    if (v.listener !== undefined) throw new UsageError("--listener is for -c FILE");
    return undefined;
  }
  return policyTarget(v.config, io.env, v.listener as string | undefined);
}

interface Db {
  url: string;
  schema: string;
  target?: PolicyTarget;
}

/** Where the table is: flags first, then -c FILE, then DATABASE_URL and the public schema. */
function db(v: Values, io: CommandIo): Db {
  const target = typeof v.url === "string" && typeof v.schema === "string" ? undefined : fromConfig(v, io);
  const url = (v.url as string | undefined) ?? target?.url ?? io.env.DATABASE_URL;
  if (!url) throw new UsageError("--url is required (or -c FILE, or set DATABASE_URL)");
  return { url, schema: (v.schema as string | undefined) ?? target?.schema ?? "public", ...(target ? { target } : {}) };
}

const DB_FLAGS = { config: { type: "string", short: "c" }, listener: { type: "string" }, url: { type: "string" }, schema: { type: "string" } } as const;

async function withDb<T>(url: string, fn: (db: pg.Client) => Promise<T>): Promise<T> {
  const db = new (pgModule("portcullis permit").Client)({ connectionString: url, connectionTimeoutMillis: 10_000 });
  db.on("error", () => {});
  try {
    await db.connect();
  } catch (e) {
    throw new PortcullisError(`cannot connect to PostgreSQL: ${(e as Error).message}`, "unavailable");
  }
  try {
    return await fn(db);
  } finally {
    await db.end().catch(() => {});
  }
}

const iso = (us: bigint | null) => (us === null ? "invalid" : new Date(Number(us / 1000n)).toISOString());

async function keygen(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parse(argv, { out: { type: "string" } });
  if (values.help) return help("keygen", io);
  const dir = required(values, "out");
  const key = generateSigningKey();
  mkdirSync(dir, { recursive: true });
  const priv = join(dir, `permit-${key.keyId}.key.pem`);
  const pub = join(dir, `permit-${key.keyId}.pub.pem`);
  writeFileSync(priv, privateKeyPem(key), { mode: 0o600, flag: "wx" });
  writeFileSync(pub, publicKeyPem(key.publicKey), { mode: 0o644, flag: "wx" });
  io.out(`key id:      ${key.keyId}`);
  io.out(`private key: ${priv}`);
  io.out(`public key:  ${pub}`);
  return 0;
}

function timeArg(v: Values, name: string, now: number, fallback?: number): number {
  const s = v[name];
  if (s === undefined && fallback !== undefined) return fallback;
  if (typeof s !== "string") throw new UsageError(`--${name} is required`);
  const t = parseTimeArg(s, now);
  if (t === undefined) throw new UsageError(`--${name}: not a time: ${JSON.stringify(s)} (use 2026-12-01T00:00:00Z, 2026-12-01, now, 90s, 15m, 12h or 30d)`);
  return t;
}

async function grant(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parse(argv, {
    identity: { type: "string" },
    dest: { type: "string" },
    ports: { type: "string" },
    cidr: { type: "string" },
    "not-before": { type: "string" },
    expires: { type: "string" },
    key: { type: "string" },
    "created-by": { type: "string" },
    ...DB_FLAGS,
  });
  if (values.help) return help("grant", io);
  const now = systemClock.wallNow();
  const identity = required(values, "identity");
  const dest = required(values, "dest");
  const ports = required(values, "ports");
  const expiresMs = timeArg(values, "expires", now);
  const notBeforeMs = timeArg(values, "not-before", now, Math.floor(now));
  const keyFile = required(values, "key");
  const table = db(values, io);
  const key = loadPrivateKey(keyFile);
  const signed = signGrant({
    identity,
    dest,
    ports,
    cidr: values.cidr as string | undefined,
    notBeforeMs,
    expiresMs,
    createdBy: (values["created-by"] as string | undefined) ?? io.env.USER ?? userInfo().username,
    key,
  });
  await withDb(table.url, (c) => insertPermission(c, table.schema, signed.fields, signed.signature));
  io.out(signed.fields.id);
  return 0;
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

async function revoke(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parse(argv, { id: { type: "string" }, ...DB_FLAGS });
  if (values.help) return help("revoke", io);
  const id = required(values, "id");
  if (!UUID.test(id)) throw new UsageError(`--id: not a permission id (a UUID): ${JSON.stringify(id)}`);
  const table = db(values, io);
  const identity = await withDb(table.url, (c) => deletePermission(c, table.schema, id.toLowerCase()));
  if (identity === undefined) {
    io.err(`portcullis permit revoke: no permission with id ${id}`);
    return 1;
  }
  io.out(`revoked ${id.toLowerCase()} (identity ${identity})`);
  return 0;
}

function describeRow(r: PermissionRow): Record<string, unknown> {
  return {
    id: r.id,
    identity: r.identity,
    dest: r.hostPattern,
    ports: formatPortRange(r.portMin, r.portMax),
    cidr: r.cidr,
    not_before: iso(r.notBeforeUs),
    expires_at: iso(r.expiresAtUs),
    created_by: r.createdBy,
    key_id: r.keyId,
    signed: r.signature !== null,
  };
}

async function list(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parse(argv, { json: { type: "boolean" }, ...DB_FLAGS });
  if (values.help) return help("list", io);
  const table = db(values, io);
  const rows = await withDb(table.url, (c) => listPermissions(c, table.schema));
  if (values.json) {
    for (const r of rows) io.out(JSON.stringify(describeRow(r)));
    return 0;
  }
  io.out(["id", "identity", "dest", "ports", "cidr", "not_before", "expires_at", "created_by", "key_id"].join("\t"));
  for (const r of rows) {
    const d = describeRow(r);
    io.out([d.id, d.identity, d.dest, d.ports, d.cidr ?? "-", d.not_before, d.expires_at, d.created_by, d.key_id ?? "-"].join("\t"));
  }
  io.out(`${rows.length} permission${rows.length === 1 ? "" : "s"}`);
  return 0;
}

async function verify(argv: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parse(argv, { "public-key": { type: "string", multiple: true }, ...DB_FLAGS }, true);
  if (values.help) return help("verify", io);
  const given = [...((values["public-key"] as string[] | undefined) ?? []), ...positionals];
  const table = db(values, io);
  // With -c FILE and no key given: the keys the gateway itself trusts.
  const files = given.length > 0 ? given : (table.target?.publicKeys ?? fromConfig(values, io)?.publicKeys ?? []);
  if (files.length === 0) throw new UsageError("--public-key is required (or -c FILE)");
  const keyring = Keyring.fromFiles(files);
  const rows = await withDb(table.url, (c) => listPermissions(c, table.schema));
  const now = systemClock.wallNow();
  let failed = 0;
  for (const r of rows) {
    const c = checkIntegrity(r, keyring);
    if (!c.ok) {
      failed++;
      io.out(`FAIL ${r.id} ${c.reason} identity=${JSON.stringify(r.identity)} key_id=${r.keyId ?? "-"}`);
      continue;
    }
    const t = timeState(c.fields, now);
    if (t !== "valid") io.out(`note ${r.id} ${t} identity=${JSON.stringify(r.identity)} (signature valid)`);
  }
  io.out(`${rows.length} rows checked with ${keyring.size} key${keyring.size === 1 ? "" : "s"} (${keyring.ids().join(", ")}): ${rows.length - failed} ok, ${failed} failed`);
  return failed > 0 ? 1 : 0;
}

function help(sub: string, io: CommandIo): number {
  io.out(HELP[sub]!);
  return 0;
}

const SUBCOMMANDS: Record<string, (argv: string[], io: CommandIo) => Promise<number>> = { keygen, grant, revoke, list, verify };

export async function main(argv: string[], io: CommandIo = processIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    io.out(HELP[""]!);
    return sub === undefined ? 2 : 0;
  }
  const run = SUBCOMMANDS[sub];
  const name = run ? `portcullis permit ${sub}` : "portcullis permit";
  try {
    if (!run) throw new UsageError(`unknown subcommand "${sub}"`);
    return await run(rest, io);
  } catch (e) {
    if (e instanceof ConfigTargetError) {
      io.err(`${name}: ${e.message}`);
      return 2;
    }
    if (e instanceof UsageError || e instanceof InvalidArgumentError) {
      io.err(`${name}: ${e.message} (try --help)`);
      return 2;
    }
    if (e instanceof PortcullisError || isDatabaseError(e)) {
      io.err(`${name}: ${(e as Error).message}`);
      return 1;
    }
    if ((e as NodeJS.ErrnoException).code === "EEXIST") {
      io.err(`${name}: refusing to overwrite an existing key file`);
      return 1;
    }
    throw e;
  }
}
