/**
 * `portcullis run` registers the signed policy's readiness with the admin
 * listener: /readyz fails while PostgreSQL is unreachable (the gateway still
 * starts) and passes when the policy is connected.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { generateSigningKey, publicKeyPem } from "../../../src/features/permissions/signing-keys.js";
import { closedPort } from "../probe-resistance/fixtures.js";
import { pgFixture } from "./pg-fixture.js";
import { GatewayProcess } from "../../helpers/gateway-process.js";
import { waitUntil } from "../../helpers/wait.js";

const TOKEN = "readiness-test-token-0123456789abcdef";
/** Bound of the gateway's start (until its admin listener is up). */
const START_MS = 60_000;

interface Readyz {
  status: number;
  body: { status: string; checks: Array<{ name: string; ok: boolean; detail?: string }> };
}

/** Starts the CLI with `policyUrl`, returns /readyz as seen once the admin listener is up. */
async function readyzOf(policyUrl: string, schema: string, wantOk: boolean): Promise<Readyz> {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-ready-"));
  const keyPath = join(dir, "authority.pub.pem");
  writeFileSync(keyPath, publicKeyPem(generateSigningKey().publicKey));
  const file = join(dir, "portcullis.toml");
  writeFileSync(
    file,
    [
      "[[listener]]",
      'name = "signed"',
      'kind = "connect"',
      'bind = "127.0.0.1:0"',
      `policy = { source = "postgres", url = "${policyUrl}", schema = "${schema}", public_key = "${keyPath}" }`,
      "[admin]",
      "enabled = true",
      'bind = "127.0.0.1:0"',
      "",
    ].join("\n"),
  );
  const gw = new GatewayProcess(file, { PORTCULLIS_ADMIN_TOKEN: TOKEN });
  try {
    // A cold start of the built CLI took 10-20 s beside CPU hogs on a shared 2-core machine: the bound is for a
    // start that never comes, and the failure shows what the gateway said.
    const url = await gw.adminUrl(START_MS);
    let last: Readyz | undefined;
    // Readiness may lag the first PostgreSQL connection by a moment; poll until the expected state, bounded.
    await waitUntil(async () => {
        const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5000) });
        last = { status: res.status, body: (await res.json()) as Readyz["body"] };
        return last.body.checks.find((c) => c.name === "permissions")?.ok === wantOk;
      }, { timeoutMs: 10_000, intervalMs: 10, message: "the permissions check" });
    return last!;
  } finally {
    await gw.stop(5000);
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("portcullis run: readiness of a postgres policy", () => {
  test("PostgreSQL unreachable: the gateway runs and /readyz is 503 with the permissions check failing", async () => {
    const port = await closedPort();
    const r = await readyzOf(`postgres://postgres@127.0.0.1:${port}/test`, "public", false);
    assert.equal(r.status, 503);
    assert.match(r.body.checks.find((c) => c.name === "permissions")!.detail ?? "", /unavailable on signed/);
  });

  test("PostgreSQL reachable: /readyz is 200", async () => {
    const f = await pgFixture("gwready");
    try {
      const r = await readyzOf(f.url, f.schema, true);
      assert.equal(r.status, 200);
      assert.equal(r.body.status, "ready");
    } finally {
      await f.drop();
    }
  });
});
