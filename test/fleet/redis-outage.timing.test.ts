/**
 * Redis killed (SIGKILL) under load and started again, once per failure
 * mode, with two real `portcullis run` gateways on it. The Redis is a
 * throw-away redis-server on a free port (no persistence: it comes back
 * empty, the hardest case for what the gateways must restore).
 *
 * For each mode: no gateway crashes and every connection of the load gets
 * an answer; during the outage the configured behaviour holds (insurance:
 * the local caps refuse past the cap; open: admits past it; closed: refuses
 * new connections); both gateways are back on Redis within 2 s of its
 * return (/readyz and the shared cap); a ban made at A during the outage
 * (failed logins) is written back, so B refuses the address; the leases of
 * connections that stayed open through the outage are taken again, so they
 * count against the shared cap; the ban's end in the log is the real one;
 * the time on the failure mode is counted while it lasts, and only then.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { Redis } from "ioredis";
import { Client, type Origin, connectHead, startEcho, userHash } from "../gateway/fixtures.js";
import { ThrowawayRedis, uniquePrefix } from "../redis/helpers.js";
import { ADMIN_TOKEN, FleetGateway, configFiles, fleetToml, relayConnect } from "./fleet-helpers.js";
import { waitUntil, sleep } from "../helpers/wait.js";

let echo: Origin;
let aliceHash: string;
const held: net.Socket[] = [];

before(async () => {
  echo = await startEcho();
  aliceHash = await userHash("s3cret");
});

after(async () => {
  for (const s of held) s.destroy();
  await echo.close();
});

async function storeState(gw: FleetGateway): Promise<string | undefined> {
  const res = await fetch(`${gw.admin}/readyz`, { signal: AbortSignal.timeout(5000) });
  const body = (await res.json()) as { checks: { name: string; detail?: string }[] };
  return body.checks.find((c) => c.name === "store")?.detail;
}

async function metric(gw: FleetGateway, name: string): Promise<number> {
  const res = await fetch(`${gw.admin}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(5000) });
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(await res.text());
  return m ? Number(m[1]) : NaN;
}

/**
 * Relay connections from rotating addresses at both gateways, a few at a
 * time, until stopped: each must be answered (echoed or closed by the
 * gateway) within 5 s. Counts the answers and keeps every failure.
 */
function startLoad(ports: number[]): { stop(): Promise<{ answered: number; failures: string[] }> } {
  let running = true;
  let answered = 0;
  const failures: string[] = [];
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; running; i++) {
      const port = ports[(w + i) % ports.length]!;
      const sockets: net.Socket[] = [];
      try {
        await relayConnect(port, `127.0.60.${((w * 50 + i) % 200) + 1}`, sockets);
        answered++;
      } catch (e) {
        failures.push((e as Error).message);
      } finally {
        for (const s of sockets) s.destroy();
      }
      await sleep(10);
    }
  };
  const workers = [0, 1, 2].map(worker);
  return {
    stop: async () => {
      running = false;
      await Promise.all(workers);
      return { answered, failures };
    },
  };
}

/** A connect-listener connection from `address`, open before the outage: the failed logins are sent on it. */
async function loginConnection(proxyPort: number, address: string): Promise<Client> {
  const c = new Client(proxyPort, address);
  await c.connected();
  return c;
}

/** Three wrong passwords on `c` (the ban's threshold); the gateway closes it when the ban starts. */
async function failLogins(c: Client): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const before = (c.text().match(/407/g) ?? []).length;
    c.write(connectHead("127.0.0.1:1", { user: "alice", password: `wrong${i}` }));
    await c.until(() => (c.text().match(/407/g) ?? []).length > before || c.closed, 5000, "407");
  }
}

/** The ban log line of `address` (JSON log on stdout), if there is one. */
function banLine(gw: FleetGateway, address: string): { until: string } | undefined {
  for (const line of gw.proc.stdout.split("\n")) {
    if (!line.includes('"ban"') || !line.includes(address)) continue;
    const o = JSON.parse(line) as { event?: string; remote_addr?: string; until?: string };
    if (o.event === "ban" && o.remote_addr === address && o.until !== undefined) return { until: o.until };
  }
  return undefined;
}

/** No stack trace and no unexpected exit: the gateway lived through it all. */
function assertAlive(gw: FleetGateway, name: string): void {
  assert.equal(gw.proc.child.exitCode, null, `${name} exited: ${gw.proc.stderr}`);
  assert.equal(gw.proc.child.signalCode, null, `${name} was killed`);
  assert.doesNotMatch(gw.proc.stderr + gw.proc.stdout, /\n\s+at .+:\d+:\d+\)?\n/, `${name} printed a stack trace`);
}

for (const mode of ["insurance", "open", "closed"] as const) {
  describe(`Redis killed under load and restarted, on_failure = "${mode}"`, () => {
    test("no crash; the mode decides during the outage; back on Redis within 2 s; the outage's ban and the open connections' slots are restored", { timeout: 60_000 }, async () => {
      const redis = await ThrowawayRedis.create();
      const prefix = uniquePrefix(`outage-${mode}`);
      const text = fleetToml({
        redisUrl: redis.url,
        prefix,
        echoPort: echo.port,
        aliceHash,
        // One expected instance: the insurance cap is the real one, so "past the cap" reads the same in every mode.
        store: [`on_failure = "${mode}"`, 'lease_ttl = "1500ms"', "expected_instances = 1"],
        guard: ["max_connections_per_ip = 2"],
      });
      const cfg = await configFiles([text, text]);
      const gws: FleetGateway[] = [];
      const admin = new Redis(redis.url, { maxRetriesPerRequest: 1, lazyConnect: true });
      admin.on("error", () => {});
      let load: ReturnType<typeof startLoad> | undefined;
      try {
        gws.push(await FleetGateway.start(cfg.files[0]!), await FleetGateway.start(cfg.files[1]!));
        const [a, b] = gws as [FleetGateway, FleetGateway];
        const kept = "127.0.61.1"; // two connections held at A through the outage
        const banned = "127.0.61.2"; // banned at A during the outage
        assert.equal(await relayConnect(a.relay, kept, held), "open");
        assert.equal(await relayConnect(a.relay, kept, held), "open");
        const login = await loginConnection(a.proxy, banned);
        load = startLoad([a.relay, b.relay]);
        await sleep(300);

        await redis.kill();
        await waitUntil(async () => (await storeState(a)) === mode && (await storeState(b)) === mode, { timeoutMs: 5000, intervalMs: 25, message: `both gateways on ${mode}` });

        // The configured behaviour while Redis is away.
        const during = "127.0.61.3";
        if (mode === "insurance") {
          assert.equal(await relayConnect(a.relay, during, held), "open");
          assert.equal(await relayConnect(a.relay, during, held), "open");
          assert.equal(await relayConnect(a.relay, during, held), "closed", "the local cap refuses past the cap");
        } else if (mode === "open") {
          for (let i = 0; i < 3; i++) assert.equal(await relayConnect(a.relay, during, held), "open", `connection ${i + 1} admitted past the cap of 2`);
        } else {
          assert.equal(await relayConnect(a.relay, during, held), "closed", "new connections refused");
          assert.equal(await relayConnect(b.relay, during, held), "closed");
        }

        // A ban made at A during the outage, with its real end in the log.
        const t0 = Date.now();
        await failLogins(login);
        await login.waitClosed(5000);
        await a.proc.waitFor(() => banLine(a, banned) !== undefined, "the ban's log line");
        const endsIn = Date.parse(banLine(a, banned)!.until) - t0;
        assert.ok(endsIn > 600_000 - 30_000 && endsIn < 600_000 + 30_000, `the logged end is ${endsIn} ms away, want about 10 minutes`);
        assert.equal(await relayConnect(a.relay, banned, held), "closed", "banned at A during the outage");

        // The time on the failure mode grows while it lasts.
        const s1 = await metric(a, "portcullis_store_fallback_seconds_total");
        await sleep(400);
        const s2 = await metric(a, "portcullis_store_fallback_seconds_total");
        assert.ok(s1 > 0 && s2 >= s1 + 0.3, `fallback seconds ${s1} then ${s2}`);

        // Redis returns, empty.
        await redis.start();
        const back = performance.now();
        await waitUntil(async () => (await storeState(a)) === "redis" && (await storeState(b)) === "redis", { timeoutMs: 5000, intervalMs: 25, message: "both gateways back on Redis" });
        const recoveredMs = performance.now() - back;
        assert.ok(recoveredMs < 2000, `back on Redis ${recoveredMs.toFixed(0)} ms after its return`);

        // The ban made during the outage is written back: B refuses the address.
        await waitUntil(async () => (await relayConnect(b.relay, banned, held)) === "closed", { timeoutMs: 2000, intervalMs: 25, message: "B refuses the address banned at A during the outage" });
        await admin.connect();
        assert.notEqual(await admin.zscore(`${prefix}{guard.ban}:bans`, banned), null, "the ban is in Redis's index");

        // The connections held through the outage count again against the shared cap (their leases are taken again).
        const leases = `${prefix}{guard.max_connections_per_ip:${kept}}`;
        await waitUntil(async () => (await admin.zcard(leases)) === 2, { timeoutMs: 2000, intervalMs: 25, message: "the open connections' leases taken again" });
        assert.equal(await relayConnect(b.relay, kept, held), "closed", "2 open at A: the 3rd at B is over the shared cap");
        if (mode !== "closed") {
          // Connections admitted by the failure mode hold no slot in Redis: they take one once it is back (up to the cap).
          await waitUntil(async () => (await admin.zcard(`${prefix}{guard.max_connections_per_ip:${during}}`)) === 2, { timeoutMs: 2000, intervalMs: 25, message: "the outage's connections counted in Redis" });
        }

        // The shared cap decides again, in every mode.
        const after = "127.0.61.4";
        assert.equal(await relayConnect(a.relay, after, held), "open");
        assert.equal(await relayConnect(b.relay, after, held), "open");
        assert.equal(await relayConnect(a.relay, after, held), "closed", "the shared cap of 2 holds across both");

        // The fallback time stands still while Redis answers.
        const m1 = await metric(a, "portcullis_store_fallback_seconds_total");
        await sleep(300);
        assert.equal(await metric(a, "portcullis_store_fallback_seconds_total"), m1);

        const { answered, failures } = await load.stop();
        load = undefined;
        assert.deepEqual(failures, [], "every connection of the load was answered");
        assert.ok(answered > 20, `${answered} connections of load`);
        assertAlive(a, "A");
        assertAlive(b, "B");
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${gws.map((g, i) => `gateway ${i}: ${g.proc.stdout.slice(-2500)}${g.proc.stderr.slice(-800)}`).join("\n")}`, { cause: e });
      } finally {
        await load?.stop();
        for (const s of held) s.destroy();
        held.length = 0;
        await Promise.all(gws.map((g) => g.stop()));
        admin.disconnect();
        await redis.kill();
        await cfg.remove();
      }
    });
  });
}
