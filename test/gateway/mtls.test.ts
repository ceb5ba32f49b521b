import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { makeTestPki, type IssuedCert, type TestPki } from "../helpers/certs.js";
import { curl, type Origin, type Running, startGateway, startOrigin, userHash } from "./fixtures.js";

const OID = "1.3.6.1.4.1.55555.7";

describe("connect listener with mTLS client identities", () => {
  let pki: TestPki;
  let client: IssuedCert;
  let origin: Origin;
  let gw: Running;
  const decisions: Array<{ listener: string; identity: string; allowed: boolean }> = [];

  before(async () => {
    pki = await makeTestPki();
    client = await pki.clientCert({ cn: "client-cn", sanUri: "spiffe://enclave/agent-7", customOid: { oid: OID, value: "team-blue" } });
    origin = await startOrigin();
    const tls = (identity: unknown, require = true) => ({
      cert: pki.serverCertPath,
      key: pki.serverKeyPath,
      client_ca: pki.caCertPath,
      identity,
      require_client_cert: require,
    });
    gw = await startGateway({
      log: { format: "json" },
      users: { alice: await userHash("s3cret") },
      policy: {
        rule: ["client-cn", "spiffe://enclave/agent-7", "team-blue", "alice"].map((id) => ({
          identities: [id],
          hosts: ["127.0.0.1"],
          ports: [origin.port],
          cidrs: ["127.0.0.1/32"],
        })),
      },
      listener: [
        { name: "cn", kind: "connect", bind: "127.0.0.1:0", tls: tls("cn") },
        { name: "san", kind: "connect", bind: "127.0.0.1:0", tls: tls("san_uri") },
        { name: "oid", kind: "connect", bind: "127.0.0.1:0", tls: tls({ oid: OID }) },
        { name: "optional", kind: "connect", bind: "127.0.0.1:0", tls: tls("cn", false) },
      ],
    });
    gw.gateway.events.on("decision", (d) => decisions.push(d));
  });
  after(async () => {
    await gw.stop();
    await origin.close();
    await rm(pki.dir, { recursive: true, force: true });
  });

  const viaTls = (listener: string, withCert = true): string[] => [
    "-p",
    "--proxy",
    `https://localhost:${gw.ports[listener]}`,
    "--proxy-cacert",
    pki.caCertPath,
    ...(withCert ? ["--proxy-cert", client.certPath, "--proxy-key", client.keyPath] : []),
  ];

  for (const [listener, identity] of [
    ["cn", "client-cn"],
    ["san", "spiffe://enclave/agent-7"],
    ["oid", "team-blue"],
  ] as const) {
    test(`curl with a client certificate reaches the origin; identity from ${listener} is ${identity}`, async () => {
      const r = await curl([...viaTls(listener), `http://127.0.0.1:${origin.port}/`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "hello from origin");
      const d = decisions.filter((x) => x.listener === listener);
      assert.equal(d.at(-1)?.identity, identity);
      assert.equal(d.at(-1)?.allowed, true);
      const auth = gw.log.events("auth").filter((e) => e.listener === listener && e.result === "accept");
      assert.equal(auth.at(-1)?.user, identity);
      assert.match(String(auth.at(-1)?.key_fingerprint), /^[0-9a-f]{64}$/);
    });
  }

  test("a certificate from another CA gives no identity: refused where required, asked for Basic where optional", async () => {
    const other = await makeTestPki();
    try {
      const stranger = await other.clientCert({ cn: "client-cn" });
      const base = (listener: string): string[] => ["-p", "--proxy", `https://localhost:${gw.ports[listener]}`, "--proxy-cacert", pki.caCertPath, "--proxy-cert", stranger.certPath, "--proxy-key", stranger.keyPath];
      const required = await curl([...base("cn"), "-o", "/dev/null", "-w", "%{http_connect}", `http://127.0.0.1:${origin.port}/`]);
      assert.notEqual(required.code, 0);
      assert.notEqual(required.stdout, "200");
      const optional = await curl([...base("optional"), "-o", "/dev/null", "-w", "%{http_connect}", `http://127.0.0.1:${origin.port}/`]);
      assert.equal(optional.stdout, "407");
    } finally {
      await rm(other.dir, { recursive: true, force: true });
    }
  });

  test("without a client certificate a listener that requires one closes the handshake", async () => {
    const r = await curl([...viaTls("cn", false), `http://127.0.0.1:${origin.port}/`]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, "");
  });

  test("where a certificate is optional, a client without one falls back to Basic auth", async () => {
    const ok = await curl([...viaTls("optional", false), "--proxy-user", "alice:s3cret", `http://127.0.0.1:${origin.port}/`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, "hello from origin");
    const denied = await curl([...viaTls("optional", false), "-o", "/dev/null", "-w", "%{http_connect}", `http://127.0.0.1:${origin.port}/`]);
    assert.equal(denied.stdout, "407");
  });
});
