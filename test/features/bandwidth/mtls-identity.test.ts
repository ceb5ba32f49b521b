/**
 * On a TLS connect listener the identity a bandwidth override matches is the
 * client certificate's (here its SAN URI), as for the destination policy.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import tls from "node:tls";
import { makeTestPki, type IssuedCert, type TestPki } from "../../helpers/certs.js";
import { connectHead, startEcho, startGateway, withTimeout, type Origin, type Running } from "../../gateway/fixtures.js";
import { sleep } from "../../helpers/wait.js";

describe("bandwidth by client certificate identity", () => {
  let pki: TestPki;
  let agent: IssuedCert;
  let other: IssuedCert;
  let echo: Origin;
  let gw: Running;

  before(async () => {
    pki = await makeTestPki();
    agent = await pki.clientCert({ cn: "agent", sanUri: "spiffe://enclave/agent-7" });
    other = await pki.clientCert({ cn: "other", sanUri: "spiffe://enclave/other" });
    echo = await startEcho();
    gw = await startGateway({
      log: { format: "json", level: "warn" },
      policy: { rule: [{ identities: ["*"], hosts: ["127.0.0.1"], ports: [echo.port], cidrs: ["127.0.0.1/32"] }] },
      listener: [
        {
          name: "mtls",
          kind: "connect",
          bind: "127.0.0.1:0",
          tls: { cert: pki.serverCertPath, key: pki.serverKeyPath, client_ca: pki.caCertPath, identity: "san_uri", require_client_cert: true },
        },
      ],
      bandwidth: { overrides: { "spiffe://enclave/agent-7": { bytes_per_second: "1MiB" } } },
    });
  });
  after(async () => {
    await gw.stop();
    await echo.close();
    await rm(pki.dir, { recursive: true, force: true });
  });

  async function tunnel(cert: IssuedCert): Promise<tls.TLSSocket> {
    const s = tls.connect({
      port: gw.port,
      host: "127.0.0.1",
      servername: "localhost",
      ca: await readFile(pki.caCertPath),
      cert: cert.cert,
      key: cert.key,
    });
    s.on("error", () => {});
    s.write(connectHead(`127.0.0.1:${echo.port}`));
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        let head = "";
        s.on("data", (d: Buffer) => {
          head += d.toString("latin1");
          if (!head.includes("\r\n\r\n")) return;
          if (head.startsWith("HTTP/1.1 200")) resolve();
          else reject(new Error(`tunnel refused: ${head.split("\r\n")[0]}`));
        });
      }),
      5000,
      "tunnel",
    );
    return s;
  }

  test("the overridden certificate identity is shaped, another is not", async () => {
    const o = await tunnel(other);
    assert.equal(gw.gateway.bandwidth.shapedConnections, 0);
    const a = await tunnel(agent);
    assert.equal(gw.gateway.bandwidth.shapedConnections, 1);
    // The shaped TLS tunnel carries data byte-exact.
    const data = randomBytes(200 * 1024);
    const parts: Buffer[] = [];
    a.removeAllListeners("data");
    a.on("data", (d: Buffer) => parts.push(d));
    a.write(data);
    await withTimeout(
      (async () => {
        while (parts.reduce((n, p) => n + p.length, 0) < data.length) await sleep(10);
      })(),
      5000,
      "echo",
    );
    assert.ok(Buffer.concat(parts).equals(data));
    o.destroy();
    a.destroy();
  });
});
