/**
 * The fleet's ban test on a real 3-node Redis Cluster (a throw-away one
 * this file starts): two `portcullis run` processes with `cluster = true`
 * and one seed node; a ban by failed logins at A refuses the address at B
 * within 1 s and cuts its open tunnel there, and `bans remove` at B lifts it.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type net from "node:net";
import { Client, type Origin, connectHead, startEcho, userHash } from "../gateway/fixtures.js";
import { ThrowawayCluster } from "../redis/cluster-helpers.js";
import { uniquePrefix } from "../redis/helpers.js";
import { FleetGateway, configFiles, fleetToml, relayConnect } from "./fleet-helpers.js";
import { waitUntil } from "../helpers/wait.js";

let echo: Origin;
let aliceHash: string;
let cluster: ThrowawayCluster;
const held: net.Socket[] = [];

before(async () => {
  echo = await startEcho();
  aliceHash = await userHash("s3cret");
  cluster = await ThrowawayCluster.create(3);
});

after(async () => {
  for (const s of held) s.destroy();
  await echo.close();
  await cluster.stop();
});

describe("two gateways on a 3-node Redis Cluster", () => {
  test("a ban at A refuses the address at B within 1 s and cuts its tunnel; the per-IP cap holds across both", async () => {
    const seed = cluster.startupNodes[0]!;
    const text = fleetToml({
      redisUrl: `redis://${seed.host}:${seed.port}`,
      prefix: uniquePrefix("fleet-cluster"),
      echoPort: echo.port,
      aliceHash,
      store: ["cluster = true"],
      guard: ["max_connections_per_ip = 2"],
    });
    const cfg = await configFiles([text, text]);
    const gws: FleetGateway[] = [];
    try {
      gws.push(await FleetGateway.start(cfg.files[0]!), await FleetGateway.start(cfg.files[1]!));
      const [a, b] = gws as [FleetGateway, FleetGateway];
      assert.match(a.proc.stderr, /store redis \(prefix "[^"]+"\): connected/);

      assert.equal(await relayConnect(a.relay, "127.0.37.1", held), "open");
      assert.equal(await relayConnect(a.relay, "127.0.37.1", held), "open");
      assert.equal(await relayConnect(b.relay, "127.0.37.1", held), "closed", "the shared cap, on the Cluster");

      const addr = "127.0.37.2";
      const tunnel = new Client(b.proxy, addr);
      await tunnel.connected();
      tunnel.write(connectHead(`127.0.0.1:${echo.port}`, { user: "alice", password: "s3cret" }));
      await tunnel.until(() => tunnel.text().includes("\r\n\r\n"), 5000, "CONNECT answer");
      assert.match(tunnel.text(), /^HTTP\/1\.1 200/);

      const bad = new Client(a.proxy, addr);
      await bad.connected();
      for (let i = 0; i < 3; i++) {
        const before = (bad.text().match(/407/g) ?? []).length;
        bad.write(connectHead("127.0.0.1:1", { user: "alice", password: `wrong${i}` }));
        await bad.until(() => (bad.text().match(/407/g) ?? []).length > before, 5000, "407");
      }
      bad.destroy();
      await tunnel.waitClosed(1000);
      assert.equal(await relayConnect(b.relay, addr, held), "closed", "refused at B");

      const removed = await b.api("DELETE", `/v1/bans/${addr}`);
      assert.equal(removed.status, 200);
      await waitUntil(async () => (await relayConnect(a.relay, addr, held)) === "open", { timeoutMs: 1000, intervalMs: 25, message: "lifted at A" });
    } finally {
      await Promise.all(gws.map((g) => g.stop()));
      await cfg.remove();
    }
  });
});
