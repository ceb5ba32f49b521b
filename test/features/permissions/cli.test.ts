import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { main as permit } from "../../../src/cli/commands/permit.js";
import { main as db, type CommandIo } from "../../../src/cli/commands/db.js";
import { Keyring, loadPublicKey } from "../../../src/features/permissions/signing-keys.js";
import { PgPermissionPolicy } from "../../../src/features/permissions/pg-policy.js";
import { DATABASE_URL } from "./pg-fixture.js";
import { CLI } from "../../helpers/cli.js";

interface Run {
  code: number;
  out: string[];
  err: string[];
}

async function run(cmd: typeof permit, argv: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const r: Run = { code: -1, out: [], err: [] };
  const io: CommandIo = { out: (l) => r.out.push(l), err: (l) => r.err.push(l), env };
  r.code = await cmd(argv, io);
  return r;
}

const BIN = CLI;

function spawnCli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...argv], { timeout: 30_000, env: { ...process.env, DATABASE_URL } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe("portcullis db / permit", () => {
  const schema = `t_cli_${randomBytes(4).toString("hex")}`;
  const dir = mkdtempSync(join(tmpdir(), "portcullis-permit-"));
  const url = DATABASE_URL;
  const dbArgs = ["--url", url, "--schema", schema];
  let client: pg.Client;
  let keyA: { priv: string; pub: string; id: string };
  let keyB: { priv: string; pub: string; id: string };

  async function keygen(sub: string) {
    const out = join(dir, sub);
    const r = await run(permit, ["keygen", "--out", out]);
    assert.equal(r.code, 0, r.err.join("\n"));
    const id = /key id:\s+([0-9a-f]{16})/.exec(r.out.join("\n"))![1]!;
    return { id, priv: join(out, `permit-${id}.key.pem`), pub: join(out, `permit-${id}.pub.pem`) };
  }

  before(async () => {
    client = new pg.Client({ connectionString: url });
    await client.connect();
  });

  after(async () => {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
    rmSync(dir, { recursive: true, force: true });
  });

  test("db migrate creates the schema once and is idempotent; --url defaults to DATABASE_URL", async () => {
    const first = await run(db, ["migrate", "--schema", schema], { DATABASE_URL: url });
    assert.equal(first.code, 0, first.err.join("\n"));
    assert.deepEqual(first.out, ["applied 0001_permissions", `schema ${schema} migrated`]);
    const again = await run(db, ["migrate", ...dbArgs]);
    assert.deepEqual([again.code, again.out], [0, [`schema ${schema} is up to date (1 migrations)`]]);
    const t = await client.query("SELECT to_regclass($1) AS t", [`${schema}.portcullis_permissions`]);
    assert.equal(t.rows[0].t, `${schema}.portcullis_permissions`);
  });

  test("keygen writes a private key readable only by its owner and the matching public key", async () => {
    keyA = await keygen("a");
    keyB = await keygen("b");
    assert.notEqual(keyA.id, keyB.id);
    assert.equal(statSync(keyA.priv).mode & 0o777, 0o600);
    assert.equal(new Keyring([loadPublicKey(keyA.pub)]).ids()[0], keyA.id);
    assert.deepEqual(readdirSync(join(dir, "a")).sort(), [`permit-${keyA.id}.key.pem`, `permit-${keyA.id}.pub.pem`]);
  });

  test("grant signs a row the gateway policy accepts; list shows it; verify passes", async () => {
    const g = await run(permit, ["grant", "--identity", "spiffe://enclave/cli", "--dest", "*.Example.com", "--ports", "8000-8100", "--expires", "1h", "--key", keyA.priv, "--created-by", "ops", ...dbArgs]);
    assert.equal(g.code, 0, g.err.join("\n"));
    const rowId = g.out[0]!;
    assert.match(rowId, /^[0-9a-f-]{36}$/);
    const policy = await PgPermissionPolicy.open({ url, schema, keyring: Keyring.fromFiles([keyA.pub]) });
    try {
      assert.deepEqual(await policy.decide("spiffe://enclave/cli", "api.example.com", 8080), { allowed: true, reason: "granted", rowId });
    } finally {
      await policy.close();
    }
    const l = await run(permit, ["list", "--json", ...dbArgs]);
    const rows = l.out.map((x) => JSON.parse(x) as Record<string, unknown>);
    assert.equal(rows.length, 1);
    assert.deepEqual(
      { ...rows[0], not_before: undefined, expires_at: undefined },
      { id: rowId, identity: "spiffe://enclave/cli", dest: "*.example.com", ports: "8000-8100", cidr: null, created_by: "ops", key_id: keyA.id, signed: true, not_before: undefined, expires_at: undefined },
    );
    const table = await run(permit, ["list", ...dbArgs]);
    assert.equal(table.out.at(-1), "1 permission");
    const v = await run(permit, ["verify", "--public-key", keyA.pub, ...dbArgs]);
    assert.equal(v.code, 0);
    assert.match(v.out.at(-1)!, /1 rows checked with 1 key \([0-9a-f]{16}\): 1 ok, 0 failed/);
  });

  test("verify exits 1 listing each row that fails: tampered, unsigned, unknown key", async () => {
    const g = await run(permit, ["grant", "--identity", "b", "--dest", "b.test", "--ports", "443", "--expires", "2099-01-01", "--key", keyB.priv, ...dbArgs]);
    const bRow = g.out[0]!;
    const t = await run(permit, ["grant", "--identity", "t", "--dest", "t.test", "--ports", "443", "--not-before", "now", "--expires", "30d", "--cidr", "10.0.0.0/8", "--key", keyA.priv, ...dbArgs]);
    const tRow = t.out[0]!;
    await client.query(`UPDATE ${schema}.portcullis_permissions SET cidr = '0.0.0.0/0' WHERE id = $1`, [tRow]);
    await client.query(
      `INSERT INTO ${schema}.portcullis_permissions (id, identity, host_pattern, port_min, port_max, not_before, expires_at, created_by)
       VALUES (gen_random_uuid(), 'u', '*', 1, 65535, now(), now() + interval '1 day', 'mallory')`,
    );
    const v = await run(permit, ["verify", "--public-key", keyA.pub, ...dbArgs]);
    assert.equal(v.code, 1);
    const fails = v.out.filter((l) => l.startsWith("FAIL"));
    assert.equal(fails.length, 3, v.out.join("\n"));
    assert.ok(fails.some((l) => l.startsWith(`FAIL ${bRow} unknown_key`)));
    assert.ok(fails.some((l) => l.startsWith(`FAIL ${tRow} bad_signature`)));
    assert.ok(fails.some((l) => / unsigned identity="u"/.test(l)));
    // Both keys trusted (one flag, several files): only the tampered and unsigned rows fail.
    const both = await run(permit, ["verify", "--public-key", keyA.pub, keyB.pub, ...dbArgs]);
    assert.equal(both.out.filter((l) => l.startsWith("FAIL")).length, 2);
  });

  test("verify notes expired rows without failing", async () => {
    const s = `${schema}`;
    const g = await run(permit, ["grant", "--identity", "old", "--dest", "o.test", "--ports", "443", "--not-before", "2020-01-01", "--expires", "2020-02-01", "--key", keyA.priv, "--url", url, "--schema", s]);
    assert.equal(g.code, 0, g.err.join("\n"));
    await client.query(`DELETE FROM ${schema}.portcullis_permissions WHERE created_by = 'mallory' OR identity IN ('t', 'b')`);
    const v = await run(permit, ["verify", "--public-key", keyA.pub, ...dbArgs]);
    assert.equal(v.code, 0, v.out.join("\n"));
    assert.ok(v.out.some((l) => l.startsWith(`note ${g.out[0]} expired`)));
  });

  test("revoke deletes the row; revoking it again exits 1", async () => {
    const g = await run(permit, ["grant", "--identity", "r", "--dest", "r.test", "--ports", "443", "--expires", "1d", "--key", keyA.priv, ...dbArgs]);
    const id = g.out[0]!;
    const r = await run(permit, ["revoke", "--id", id, ...dbArgs]);
    assert.deepEqual([r.code, r.out], [0, [`revoked ${id} (identity r)`]]);
    assert.equal((await client.query(`SELECT 1 FROM ${schema}.portcullis_permissions WHERE id = $1`, [id])).rowCount, 0);
    const again = await run(permit, ["revoke", "--id", id, ...dbArgs]);
    assert.deepEqual([again.code, again.err], [1, [`portcullis permit revoke: no permission with id ${id}`]]);
  });

  test("-c FILE: the table, schema and trusted keys come from the gateway's configuration (relative paths from its folder)", async () => {
    const cfg = join(dir, "gateway.toml");
    const pubName = `a/permit-${keyA.id}.pub.pem`;
    writeFileSync(
      cfg,
      `[[listener]]\nname = "egress"\nkind = "connect"\nbind = "127.0.0.1:0"\npolicy = { source = "postgres", url_env = "MY_POLICY_URL", schema = "${schema}", public_key = "${pubName}" }\n`,
    );
    // No DATABASE_URL, no --url, --schema or --public-key: all of it from the file (the URL through its url_env).
    const env = { MY_POLICY_URL: url };
    const g = await run(permit, ["grant", "--identity", "cfg", "--dest", "cfg.test", "--ports", "443", "--expires", "1d", "--key", keyA.priv, "-c", cfg], env);
    assert.equal(g.code, 0, g.err.join("\n"));
    const l = await run(permit, ["list", "--json", "-c", cfg], env);
    assert.equal(l.code, 0, l.err.join("\n"));
    assert.ok(l.out.some((x) => (JSON.parse(x) as { id: string }).id === g.out[0]), "the row granted through -c is listed through -c");
    const v = await run(permit, ["verify", "-c", cfg], env);
    assert.equal(v.code, 0, v.out.join("\n"));
    assert.match(v.out.at(-1)!, new RegExp(`rows checked with 1 key \\(${keyA.id}\\)`));
    const r = await run(permit, ["revoke", "--id", g.out[0]!, "-c", cfg], env);
    assert.equal(r.code, 0, r.err.join("\n"));
    // The URL's variable unset: one line naming the key path.
    const noUrl = await run(permit, ["list", "-c", cfg], {});
    assert.deepEqual([noUrl.code, noUrl.err], [2, [`portcullis permit list: ${cfg}: listener[0].policy.url: not set, nor the environment variable MY_POLICY_URL`]]);
    const wrongListener = await run(permit, ["list", "-c", cfg, "--listener", "other"], env);
    assert.equal(wrongListener.code, 2);
    assert.match(wrongListener.err[0]!, /no connect listener named "other"/);
  });

  test("bad usage exits 2 with one line naming the problem", async () => {
    const base = ["--identity", "x", "--dest", "x.test", "--ports", "443", "--expires", "1d", "--key", keyA.priv, ...dbArgs];
    const cases: [string[], RegExp][] = [
      [["grant", ...base.filter((a) => a !== "--expires" && a !== "1d")], /--expires is required/],
      [["grant", ...base.map((a) => (a === "443" ? "70000" : a))], /ports/],
      [["grant", ...base.map((a) => (a === "1d" ? "soon" : a))], /--expires: not a time/],
      [["grant", ...base.map((a) => (a === "x.test" ? "bad host" : a))], /dest/],
      [["grant", ...base, "--bogus"], /^portcullis permit grant: unknown option --bogus \(try --help\)$/],
      [["grant", ...base.map((a) => (a === keyA.priv ? keyA.pub : a))], /not a PEM private key/],
      [["revoke", "--id", "nope", ...dbArgs], /not a permission id/],
      [["verify", ...dbArgs], /--public-key is required/],
      [["list"], /--url is required/],
      [["frobnicate"], /unknown subcommand "frobnicate"/],
      [["grant", ...base, "--schema", "x;drop"], /schema/],
    ];
    for (const [argv, re] of cases) {
      const r = await run(permit, argv);
      assert.equal(r.code, 2, `${argv.join(" ")}: ${r.err.join("\n")}`);
      assert.equal(r.err.length, 1);
      assert.match(r.err[0]!, re);
      assert.doesNotMatch(r.err[0]!, /\n|at .*\.ts/);
    }
    const d = await run(db, ["migrate"]);
    assert.deepEqual([d.code, d.err.length], [2, 1]);
    assert.equal((await run(db, ["upgrade", ...dbArgs])).code, 2);
  });

  test("--help for each subcommand", async () => {
    for (const sub of ["keygen", "grant", "revoke", "list", "verify"]) {
      const r = await run(permit, [sub, "--help"]);
      assert.equal(r.code, 0);
      assert.match(r.out.join("\n"), new RegExp(`usage: portcullis permit ${sub}`));
    }
    assert.match((await run(permit, ["--help"])).out.join("\n"), /keygen\s+make a signing key pair/);
    assert.match((await run(db, ["--help"])).out.join("\n"), /usage: portcullis db migrate/);
  });

  test("the installed binary: exit codes and one-line errors", async () => {
    const v = await spawnCli(["permit", "verify", "--public-key", keyB.pub, "--schema", schema]);
    assert.equal(v.code, 1, v.stderr);
    assert.match(v.stdout, /^FAIL [0-9a-f-]{36} unknown_key/m);
    const bad = await spawnCli(["permit", "grant", "--identity", "x"]);
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr.trim().split("\n").length, 1);
    const down = await spawnCli(["permit", "list", "--url", "postgres://postgres@127.0.0.1:1/none"]);
    assert.equal(down.code, 1);
    assert.match(down.stderr.trim(), /^portcullis permit list: cannot connect to PostgreSQL: .*ECONNREFUSED/);
  });
});
