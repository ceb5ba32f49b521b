/**
 * Two real `portcullis run` processes on one Redis (a prefix of this
 * file's own): the guard's caps, rates and bans hold across them, bans
 * cut live tunnels at the other gateway and survive a restart of both, and
 * the slots of a gateway killed with open connections free themselves
 * within the lease TTL.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import type net from "node:net";
import { CLI } from "../helpers/cli.js";
import { Client, type Origin, connectHead, startEcho, userHash } from "../gateway/fixtures.js";
import { REDIS_URL, deletePrefix, uniquePrefix } from "../redis/helpers.js";
import { ADMIN_TOKEN, FleetGateway, closed, configFiles, fleetToml, relayConnect } from "./fleet-helpers.js";
import { waitUntil, sleep } from "../helpers/wait.js";

let echo: Origin;
let aliceHash: string;
const held: net.Socket[] = [];
const prefixes: string[] = [];

before(async () => {
  echo = await startEcho();
  aliceHash = await userHash("s3cret");
});

after(async () => {
  for (const s of held) s.destroy();
  await echo.close();
  for (const p of prefixes) await deletePrefix(p);
});

/** Two gateways on one Redis under a fresh prefix; `stop()` ends both and removes their files. */
async function twoGateways(o: { store?: string[]; guard?: string[] } = {}) {
  const prefix = uniquePrefix("fleet");
  prefixes.push(prefix);
  const text = fleetToml({ redisUrl: REDIS_URL, prefix, echoPort: echo.port, aliceHash, ...o });
  const cfg = await configFiles([text, text]);
  const gws: FleetGateway[] = [];
  try {
    gws.push(await FleetGateway.start(cfg.files[0]!));
    gws.push(await FleetGateway.start(cfg.files[1]!));
  } catch (err) {
    await Promise.all(gws.map((g) => g.stop()));
    await cfg.remove();
    throw err;
  }
  return {
    gws,
    files: cfg.files,
    stop: async () => {
      await Promise.all(gws.map((g) => g.stop()));
      await cfg.remove();
    },
  };
}

/** A CONNECT tunnel to the echo server through `proxyPort`, as alice: resolves once the tunnel echoes. */
async function tunnel(proxyPort: number, localAddress: string): Promise<Client> {
  const c = new Client(proxyPort, localAddress);
  await c.connected();
  c.write(connectHead(`127.0.0.1:${echo.port}`, { user: "alice", password: "s3cret" }));
  await c.until(() => c.text().includes("\r\n\r\n"), 5000, "CONNECT answer");
  assert.match(c.text(), /^HTTP\/1\.1 200/, "the tunnel opens");
  c.write("ping");
  await c.until(() => c.text().endsWith("ping"), 5000, "echo through the tunnel");
  return c;
}

/** Three wrong passwords on one connection from `localAddress` (the ban's threshold). */
async function failLogins(proxyPort: number, localAddress: string): Promise<void> {
  const c = new Client(proxyPort, localAddress);
  try {
    await c.connected();
    for (let i = 0; i < 3; i++) {
      const before = (c.text().match(/407/g) ?? []).length;
      c.write(connectHead("127.0.0.1:1", { user: "alice", password: `wrong${i}` }));
      await c.until(() => (c.text().match(/407/g) ?? []).length > before, 5000, "407");
    }
  } finally {
    c.destroy();
  }
}

/** `portcullis bans <args>` against a gateway's admin API. */
function bansCli(gw: FleetGateway, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, "bans", ...args, "--url", gw.admin, "--token", ADMIN_TOKEN], { encoding: "utf8", timeout: 15_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("two gateways on one Redis", () => {
  test("the per-IP cap holds across them: 2 at A, the 3rd at B is refused; freeing one at A lets B admit", async () => {
    const f = await twoGateways({ guard: ["max_connections_per_ip = 2"] });
    try {
      const [a, b] = f.gws as [FleetGateway, FleetGateway];
      assert.equal(await relayConnect(a.relay, "127.0.31.1", held), "open");
      assert.equal(await relayConnect(a.relay, "127.0.31.1", held), "open");
      assert.equal(await relayConnect(b.relay, "127.0.31.1", held), "closed", "the third connection, at the other gateway, is over the shared cap");
      assert.equal(await relayConnect(b.relay, "127.0.31.2", held), "open", "another address has its own count");
      // One of A's two ends: B may admit one.
      const first = held.find((s) => s.localAddress === "127.0.31.1" && !s.destroyed)!;
      first.destroy();
      await waitUntil(async () => (await relayConnect(b.relay, "127.0.31.1", held)) === "open", { timeoutMs: 5000, intervalMs: 25, message: "a freed slot is seen at B" });
    } finally {
      await f.stop();
    }
  });

  test("the connection rate is shared: 3 per minute across both gateways", async () => {
    const f = await twoGateways({ guard: ['connection_rate = { limit = 3, window = "1m" }'] });
    try {
      const [a, b] = f.gws as [FleetGateway, FleetGateway];
      const results = [
        await relayConnect(a.relay, "127.0.32.1", held),
        await relayConnect(b.relay, "127.0.32.1", held),
        await relayConnect(a.relay, "127.0.32.1", held),
        await relayConnect(b.relay, "127.0.32.1", held),
        await relayConnect(a.relay, "127.0.32.1", held),
      ];
      assert.deepEqual(results, ["open", "open", "open", "closed", "closed"]);
    } finally {
      await f.stop();
    }
  });

  test("a ban at A by failed logins refuses the address at B within 1 s and cuts its tunnel at B; it survives a restart of both; `bans remove` at B lifts it everywhere", async () => {
    const f = await twoGateways();
    const addr = "127.0.33.1";
    try {
      let [a, b] = f.gws as [FleetGateway, FleetGateway];
      const open = await tunnel(b.proxy, addr);
      const bystander = await tunnel(b.proxy, "127.0.33.2");
      await failLogins(a.proxy, addr);
      const t0 = performance.now();
      await open.waitClosed(1000);
      const cutMs = performance.now() - t0;
      assert.ok(cutMs < 1000, `the tunnel at B was cut after ${cutMs.toFixed(0)} ms`);
      assert.equal(await relayConnect(b.relay, addr, held), "closed", "refused at B");
      assert.equal(bystander.closed, false, "another address keeps its tunnel");
      bystander.destroy();
      const listed = await b.api("GET", "/v1/bans");
      assert.deepEqual((listed.json.bans as { key: string }[]).map((x) => x.key), [addr], "B lists the ban made at A");

      // Both gateways restart: the ban lives in Redis.
      await Promise.all([a.stop(), b.stop()]);
      a = await FleetGateway.start(f.files[0]!);
      b = await FleetGateway.start(f.files[1]!);
      f.gws.splice(0, 2, a, b);
      assert.equal(await relayConnect(a.relay, addr, held), "closed", "refused at A after the restart");
      assert.equal(await relayConnect(b.relay, addr, held), "closed", "refused at B after the restart");
      const cliList = bansCli(a, "list", "--json");
      assert.equal(cliList.status, 0, cliList.stderr);
      assert.deepEqual((JSON.parse(cliList.stdout) as { bans: { key: string }[] }).bans.map((x) => x.key), [addr]);

      const removed = bansCli(b, "remove", addr);
      assert.equal(removed.status, 0, removed.stderr);
      const liftFrom = performance.now();
      await waitUntil(async () => (await relayConnect(a.relay, addr, held)) === "open", { timeoutMs: 1000, intervalMs: 25, message: "the unban reaches A" });
      const liftMs = performance.now() - liftFrom;
      assert.ok(liftMs < 1000);
      assert.equal(await relayConnect(b.relay, addr, held), "open");
      assert.deepEqual((await a.api("GET", "/v1/bans")).json.bans, []);
    } finally {
      await f.stop();
    }
  });

  test("a ban added with `portcullis bans add` at B refuses the address at A and cuts its connections there", async () => {
    const f = await twoGateways();
    const addr = "127.0.34.1";
    try {
      const [a, b] = f.gws as [FleetGateway, FleetGateway];
      const open = await tunnel(a.proxy, addr);
      const added = bansCli(b, "add", addr, "--duration", "10m");
      assert.equal(added.status, 0, added.stderr);
      await open.waitClosed(1000);
      assert.equal(await relayConnect(a.relay, addr, held), "closed");
    } finally {
      await f.stop();
    }
  });

  test("a gateway killed with open connections: its slots free themselves within the lease TTL", async () => {
    const f = await twoGateways({ store: ['lease_ttl = "1500ms"'], guard: ["max_connections_per_ip = 2"] });
    const addr = "127.0.35.1";
    try {
      const [a, b] = f.gws as [FleetGateway, FleetGateway];
      assert.equal(await relayConnect(a.relay, addr, held), "open");
      assert.equal(await relayConnect(a.relay, addr, held), "open");
      // Held past two renewals: the leases stay while A lives.
      await sleep(2000);
      assert.equal(await relayConnect(b.relay, addr, held), "closed", "A's renewed leases still fill the cap");
      const mine = held.filter((s) => s.localAddress === addr && !s.destroyed);
      await a.kill();
      await Promise.all(mine.map((s) => closed(s, 5000, "the killed gateway's sockets close")));
      assert.equal(await relayConnect(b.relay, addr, held), "closed", "right after the kill the slots are still held");
      const freeFrom = performance.now();
      await waitUntil(async () => (await relayConnect(b.relay, addr, held)) === "open", { timeoutMs: 3000, intervalMs: 25, message: "slots freed by the TTL" });
      const freedMs = performance.now() - freeFrom;
      assert.ok(freedMs < 3000);
    } finally {
      await f.stop();
    }
  });
});
