/**
 * Two gateways on a throw-away redis-server reached over TLS only
 * (rediss://, a private CA named by store.tls.ca), logged in as an ACL user
 * whose keys and channels are limited to the fleet's prefix: the shared
 * cap and a ban across both work with nothing outside the prefix.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import net from "node:net";
import { makeTestPki, type TestPki } from "../helpers/certs.js";
import { Client, type Origin, connectHead, startEcho, userHash } from "../gateway/fixtures.js";
import { FleetGateway, configFiles, fleetToml, relayConnect } from "./fleet-helpers.js";
import { waitUntil } from "../helpers/wait.js";
import { freePort } from "../helpers/free-port.js";

const PREFIX = "pc:tls:";
const PASSWORD = "acl-s3cret-pw";
let echo: Origin;
let aliceHash: string;
let pki: TestPki;
let redis: ChildProcess;
let port: number;
const held: net.Socket[] = [];

before(async () => {
  echo = await startEcho();
  aliceHash = await userHash("s3cret");
  pki = await makeTestPki();
  port = await freePort();
  redis = spawn(
    "redis-server",
    [
      "--port", "0",
      "--tls-port", String(port),
      "--bind", "127.0.0.1",
      "--tls-cert-file", pki.serverCertPath,
      "--tls-key-file", pki.serverKeyPath,
      "--tls-ca-cert-file", pki.caCertPath,
      "--tls-auth-clients", "no",
      "--save", "",
      "--appendonly", "no",
      // The default user cannot do anything; the gateways' user only under the prefix.
      "--user", "default", "off",
      "--user", "fleet", "on", `>${PASSWORD}`, `~${PREFIX}*`, `&${PREFIX}*`, "+@all",
    ],
    { stdio: "ignore" },
  );
  await waitUntil(() =>
      new Promise<boolean>((resolve) => {
        const s = net.connect(port, "127.0.0.1");
        s.once("connect", () => (s.destroy(), resolve(true)));
        s.once("error", () => resolve(false));
      }), { timeoutMs: 5000, message: "redis-server with TLS" });
});

after(async () => {
  for (const s of held) s.destroy();
  redis?.kill("SIGKILL");
  await echo.close();
});

describe("rediss:// with a private CA and an ACL user limited to the prefix", () => {
  test("two gateways share the cap and a ban", async () => {
    const text = fleetToml({
      redisUrl: `rediss://fleet:${PASSWORD}@127.0.0.1:${port}/0`,
      prefix: PREFIX,
      echoPort: echo.port,
      aliceHash,
      store: [`tls = { ca = "${pki.caCertPath}" }`],
      guard: ["max_connections_per_ip = 1"],
    });
    const cfg = await configFiles([text, text]);
    const gws: FleetGateway[] = [];
    try {
      gws.push(await FleetGateway.start(cfg.files[0]!), await FleetGateway.start(cfg.files[1]!));
      const [a, b] = gws as [FleetGateway, FleetGateway];
      assert.match(a.proc.stderr, /store redis \(prefix "pc:tls:"\): connected/, a.proc.stderr);
      assert.ok(!a.proc.stdout.includes(PASSWORD) && !a.proc.stderr.includes(PASSWORD), "the password is never logged");
      assert.equal(await relayConnect(a.relay, "127.0.38.1", held), "open");
      assert.equal(await relayConnect(b.relay, "127.0.38.1", held), "closed", "the cap, shared over TLS");

      const addr = "127.0.38.2";
      const tunnel = new Client(b.proxy, addr);
      await tunnel.connected();
      tunnel.write(connectHead(`127.0.0.1:${echo.port}`, { user: "alice", password: "s3cret" }));
      await tunnel.until(() => tunnel.text().includes("\r\n\r\n"), 5000, "CONNECT answer");
      assert.match(tunnel.text(), /^HTTP\/1\.1 200/);
      const banned = await a.api("POST", "/v1/bans", { ip: addr, duration: "10m" });
      assert.equal(banned.status, 201);
      await tunnel.waitClosed(1000);
      assert.equal(await relayConnect(b.relay, addr, held), "closed");
      assert.equal(a.proc.count("store: redis unavailable"), 0, "no ACL or TLS error switched a gateway to its failure mode");
      assert.equal(b.proc.count("store: redis unavailable"), 0);
    } finally {
      await Promise.all(gws.map((g) => g.stop()));
      await cfg.remove();
    }
  });
});
