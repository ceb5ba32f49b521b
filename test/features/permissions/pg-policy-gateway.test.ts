/**
 * Signed PostgreSQL permissions in a real Gateway: an mTLS connect listener
 * with `policy = { source = "postgres" }`, driven by real curl with client
 * certificates, against the real PostgreSQL at DATABASE_URL (a schema of
 * this file's own, dropped afterwards).
 *
 * The destination is a 127.0.0.x HTTP server. Loopback is a special
 * address, so both sides allow it explicitly: the listener's
 * `policy.allow_special = ["127.0.0.0/8"]` and the grant's signed
 * `cidr = "127.0.0.0/8"`.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import tls from "node:tls";
import { systemClock } from "../../../src/core/clock.js";
import { generateSigningKey, publicKeyPem } from "../../../src/features/permissions/signing-keys.js";
import { makeTestPki, type IssuedCert, type TestPki } from "../../helpers/certs.js";
import { configOf, startGateway, startOrigin, type Origin } from "../../gateway/fixtures.js";
import { grant, pgFixture, type PgFixture } from "./pg-fixture.js";
import { closedPort } from "../probe-resistance/fixtures.js";
import { permissionsReadiness } from "../../../src/features/permissions/readiness.js";
import { waitUntil } from "../../helpers/wait.js";

interface CurlResult {
  code: number;
  body: string;
  stderr: string;
}

function curlVia(port: number, pki: TestPki, client: IssuedCert, url: string): Promise<CurlResult> {
  const args = [
    "-sS", "--max-time", "5", "--proxytunnel",
    "--proxy", `https://127.0.0.1:${port}`,
    "--proxy-cacert", pki.caCertPath, "--proxy-cert", client.certPath, "--proxy-key", client.keyPath,
    url,
  ];
  return new Promise((resolve) => {
    execFile("curl", args, { timeout: 10_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, body: stdout, stderr });
    });
  });
}

function gatewayDoc(pki: TestPki, policy: Record<string, unknown>, revokeCloses: boolean): Record<string, unknown> {
  return {
    log: { format: "json" },
    listener: [
      {
        name: "signed",
        kind: "connect",
        bind: "127.0.0.1:0",
        tls: { cert: pki.serverCertPath, key: pki.serverKeyPath, client_ca: pki.caCertPath, identity: "san_uri", require_client_cert: true },
        policy: { source: "postgres", allow_special: ["127.0.0.0/8"], ...policy },
        revoke_closes_tunnels: revokeCloses,
      },
    ],
  };
}

/** A tunnel held open by a client of our own; resolves once the 200 arrived. */
async function liveTunnel(port: number, pki: TestPki, client: IssuedCert, target: string): Promise<{ closed: Promise<number>; socket: tls.TLSSocket }> {
  const live = tls.connect({ host: "127.0.0.1", port, ca: pki.caCert, cert: client.cert, key: client.key, servername: "localhost" });
  live.on("error", () => {});
  const established = new Promise<string>((resolve) => live.once("data", (d: Buffer) => resolve(d.toString())));
  live.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  const head = await Promise.race([established, new Promise<string>((r) => setTimeout(() => r("timeout"), 5000))]);
  assert.match(head, /^HTTP\/1\.1 200/);
  return { socket: live, closed: new Promise<number>((resolve) => live.once("close", () => resolve(performance.now()))) };
}

describe("gateway connect listener with a postgres policy", () => {
  let f: PgFixture;
  let pki: TestPki;
  let agent: IssuedCert;
  let other: IssuedCert;
  let origin: Origin;
  let keyPath: string;
  const key = generateSigningKey();
  const identity = "spiffe://enclave/agent";
  const otherIdentity = "spiffe://enclave/other";

  before(async () => {
    f = await pgFixture("gwperm");
    pki = await makeTestPki();
    [agent, other] = await Promise.all([pki.clientCert({ cn: "agent", sanUri: identity }), pki.clientCert({ cn: "other", sanUri: otherIdentity })]);
    keyPath = join(pki.dir, "authority.pub.pem");
    await writeFile(keyPath, publicKeyPem(key.publicKey));
    origin = await startOrigin("127.0.0.5");
  });
  after(async () => {
    await origin?.close();
    await f?.drop();
  });

  test("grant lets curl through; revoke refuses new tunnels and closes the open one (by NOTIFY, long before the cache expires)", async (t) => {
    const gw = await startGateway(gatewayDoc(pki, { url: f.url, schema: f.schema, public_key: keyPath, cache_ttl: "10m" }, true));
    try {
      const url = `http://127.0.0.5:${origin.port}/`;
      await waitUntil(async () => (await curlVia(gw.port, pki, agent, url)).stderr.includes("403"), { timeoutMs: 5000, intervalMs: 10, message: "a refusal before any grant" });
      const rowId = await grant(f, { identity, dest: "127.0.0.5", ports: String(origin.port), cidr: "127.0.0.0/8", key }, systemClock.wallNow());
      // The grant reaches the gateway's cache by NOTIFY, a moment after the insert commits.
      await waitUntil(async () => (await curlVia(gw.port, pki, agent, url)).code === 0, { timeoutMs: 5000, intervalMs: 10, message: "the grant seen" });
      const ok = await curlVia(gw.port, pki, agent, url);
      assert.deepEqual([ok.code, ok.body], [0, "hello from origin"], ok.stderr);
      // Another identity has no row.
      assert.match((await curlVia(gw.port, pki, other, url)).stderr, /403/);

      const live = await liveTunnel(gw.port, pki, agent, `127.0.0.5:${origin.port}`);
      const t0 = performance.now();
      await f.db.query(`DELETE FROM ${f.schema}.portcullis_permissions WHERE id = $1`, [rowId]);
      // The cache keeps decisions 10 minutes and the listener's idle timeout is 5 minutes: within these
      // bounds only the revoke's NOTIFY explains a refusal and a closed tunnel, however loaded the machine.
      // How fast it came is printed (well under 1 s on an idle machine).
      await waitUntil(async () => /403/.test((await curlVia(gw.port, pki, agent, url)).stderr), { timeoutMs: 20_000, intervalMs: 10, message: "curl to be refused after the revoke" });
      const refusedAfter = performance.now() - t0;
      const closedAfter = (await Promise.race([live.closed, new Promise<number>((r) => setTimeout(() => r(Infinity), 20_000))])) - t0;
      assert.ok(Number.isFinite(closedAfter), "the revoke closed the live tunnel");
      t.diagnostic(`new tunnels refused after ${refusedAfter.toFixed(0)} ms, live tunnel closed after ${closedAfter.toFixed(0)} ms`);
    } finally {
      await gw.stop();
    }
  });

  test("revoke_closes_tunnels = false: the revoke refuses new tunnels but leaves the open one", async () => {
    const gw = await startGateway(gatewayDoc(pki, { url: f.url, schema: f.schema, public_key: [keyPath], cache_ttl: "60s" }, false));
    try {
      const url = `http://127.0.0.5:${origin.port}/`;
      const rowId = await grant(f, { identity: otherIdentity, dest: "127.0.0.5", ports: String(origin.port), cidr: "127.0.0.0/8", key }, systemClock.wallNow());
      await waitUntil(async () => (await curlVia(gw.port, pki, other, url)).code === 0, { timeoutMs: 5000, intervalMs: 10, message: "the grant to be used" });
      const live = await liveTunnel(gw.port, pki, other, `127.0.0.5:${origin.port}`);
      await f.db.query(`DELETE FROM ${f.schema}.portcullis_permissions WHERE id = $1`, [rowId]);
      await waitUntil(async () => /403/.test((await curlVia(gw.port, pki, other, url)).stderr), { timeoutMs: 20_000, intervalMs: 10, message: "curl to be refused after the revoke" });
      // The open tunnel still carries a request.
      live.socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.5\r\nConnection: close\r\n\r\n`);
      const answer = await new Promise<string>((resolve) => {
        let text = "";
        live.socket.on("data", (d: Buffer) => {
          text += d.toString();
          if (text.includes("hello from origin")) resolve(text);
        });
        setTimeout(() => resolve(text), 3000);
      });
      assert.match(answer, /hello from origin/);
      live.socket.destroy();
    } finally {
      await gw.stop();
    }
  });

  test("a tampered row grants nothing", async () => {
    const gw = await startGateway(gatewayDoc(pki, { url: f.url, schema: f.schema, public_key: keyPath, cache_ttl: "0s" }, false));
    try {
      const tampered = "spiffe://enclave/tampered";
      const client = await pki.clientCert({ cn: "tampered", sanUri: tampered });
      // Signed for port 1 only, then widened in the table without a new signature.
      const rowId = await grant(f, { identity: tampered, dest: "127.0.0.5", ports: "1", cidr: "127.0.0.0/8", key }, systemClock.wallNow());
      await f.db.query(`UPDATE ${f.schema}.portcullis_permissions SET port_max = 65535 WHERE id = $1`, [rowId]);
      const reasons: string[] = [];
      gw.gateway.events.on("decision", (d) => reasons.push(d.reason));
      const r = await curlVia(gw.port, pki, client, `http://127.0.0.5:${origin.port}/`);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /403/);
      assert.deepEqual(reasons, ["permission: bad_signature"]);
    } finally {
      await gw.stop();
    }
  });

  test("a special address outside allow_special is refused even with a signed grant", async () => {
    const gw = await startGateway(gatewayDoc(pki, { url: f.url, schema: f.schema, public_key: keyPath, cache_ttl: "0s", allow_special: [] }, false));
    try {
      const id = "spiffe://enclave/ssrf";
      const client = await pki.clientCert({ cn: "ssrf", sanUri: id });
      await grant(f, { identity: id, dest: "127.0.0.5", ports: String(origin.port), cidr: "127.0.0.0/8", key }, systemClock.wallNow());
      const r = await curlVia(gw.port, pki, client, `http://127.0.0.5:${origin.port}/`);
      assert.match(r.stderr, /403/);
    } finally {
      await gw.stop();
    }
  });

  test("reload: a listener that drops policy goes back to [[policy.rule]], and a new policy becomes ready", async () => {
    const withPolicy = gatewayDoc(pki, { url: f.url, schema: f.schema, public_key: keyPath }, false);
    const gw = await startGateway(withPolicy);
    try {
      await waitUntil(() => gw.gateway.permissionsReady().every((r) => r.ready) && gw.gateway.permissionsReady().length === 1, { timeoutMs: 5000, intervalMs: 10, message: "the policy to be ready" });
      const listener = (withPolicy.listener as Array<Record<string, unknown>>)[0]!;
      const { policy: _dropped, revoke_closes_tunnels: _r, ...plain } = listener;
      // Same bind: the listener keeps its socket, so the reload updates it in place.
      const rules = { policy: { rule: [{ identities: [identity], hosts: ["*"], ports: [], cidrs: ["127.0.0.0/8"] }] } };
      await gw.gateway.reload(configOf({ ...withPolicy, ...rules, listener: [{ ...plain, bind: `127.0.0.1:${gw.port}` }] }));
      assert.deepEqual(gw.gateway.permissionsReady(), []);
      const byRule = await curlVia(gw.port, pki, agent, `http://127.0.0.5:${origin.port}/`);
      assert.deepEqual([byRule.code, byRule.body], [0, "hello from origin"], byRule.stderr);
      await gw.gateway.reload(configOf({ ...withPolicy, listener: [{ ...listener, bind: `127.0.0.1:${gw.port}` }] }));
      await waitUntil(() => gw.gateway.permissionsReady().length === 1 && gw.gateway.permissionsReady()[0]!.ready, { timeoutMs: 5000, intervalMs: 10, message: "the new policy to be ready" });
    } finally {
      await gw.stop();
    }
  });

  test("PostgreSQL down: the gateway starts, reports not ready and fails closed", async () => {
    const port = await closedPort();
    const gw = await startGateway(gatewayDoc(pki, { url: `postgres://postgres@127.0.0.1:${port}/test`, public_key: keyPath }, false));
    try {
      assert.deepEqual(gw.gateway.permissionsReady(), [{ listener: "signed", ready: false }]);
      assert.equal(permissionsReadiness(gw.gateway).ok, false);
      const r = await curlVia(gw.port, pki, agent, `http://127.0.0.5:${origin.port}/`);
      assert.match(r.stderr, /403/);
    } finally {
      await gw.stop();
    }
  });
});
