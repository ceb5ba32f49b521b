/**
 * The `http` listener's limits held by a fleet: two real `portcullis run`
 * gateways on one Redis (`[store] kind = "redis"`) in front of one
 * upstream. `/token` allows 30 per minute in a fixed window with a queue of
 * 4: across both gateways exactly 30 requests pass in the window, and the
 * queue holds 4 across both (not 4 at each). A subject locked out through
 * one gateway is locked out at the other.
 *
 * Counts, not timing: the window is a minute and the test starts well
 * inside one (it waits for the next minute when fewer than 30 s are left).
 */
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, test } from "node:test";
import { withTimeout } from "../gateway/fixtures.js";
import { type Upstream, startUpstream } from "../features/http/gateway-helpers.js";
import { systemClock } from "../../src/core/clock.js";
import { Lockout } from "../../src/features/http/lockout.js";
import { resolveProfile } from "../../src/features/http/profiles.js";
import { RedisStore } from "../../src/stores/redis/redis-store.js";
import { REDIS_URL, deletePrefix } from "../redis/helpers.js";
import { fleetPrefix, redisStoreToml, startFleet } from "./fleet-processes.js";
import { sleep } from "../helpers/wait.js";

function fleetToml(upstreamPort: number, prefix: string): string {
  return `
[log]
format = "json"
level = "warn"

${redisStoreToml(prefix)}

[[listener]]
name = "api"
kind = "http"
bind = "127.0.0.1:0"
upstream = "http://127.0.0.1:${upstreamPort}"

[http]
lockout = { max_failures = 3, window = "15m", duration = "15m" }

[[http.route]]
name = "token"
match = "/token"
limit = { algorithm = "fixed_window", permit_limit = 30, window = "60s", queue_limit = 4, key = "ip" }

[[http.route]]
name = "login"
match = "/login"
methods = ["POST"]
limit = { algorithm = "fixed_window", permit_limit = 100, window = "60s" }
lockout = { subject = "user", failure_statuses = [401], success_resets = false }
`;
}

interface Sent {
  req: http.ClientRequest;
  /** The status, once a response came. */
  status: Promise<number>;
}

/** A request on a connection of its own (the gateway queues it, so the reply may not come until the next window). */
function send(port: number, path: string, body?: string): Sent {
  const req = http.request({ host: "127.0.0.1", port, path, method: body === undefined ? "GET" : "POST", agent: false, headers: body === undefined ? {} : { "content-type": "application/x-www-form-urlencoded" } });
  const status = new Promise<number>((resolve, reject) => {
    req.on("response", (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
  });
  status.catch(() => {});
  req.end(body);
  return { req, status };
}

const statusOf = (s: Sent): Promise<number> => withTimeout(s.status, 10_000, "a response");

/** Waits for the next minute when fewer than 30 s of this one are left, so the minute-long window holds the whole test. */
async function insideOneMinute(): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 30_000) await sleep(left + 100);
}

describe("http limits across gateways on one Redis", () => {
  let up: Upstream;
  const prefix = fleetPrefix("http");
  before(async () => {
    up = await startUpstream();
  });
  after(async () => {
    await up.close();
    await deletePrefix(prefix);
  });

  test("/token at 30 per minute across two gateways: exactly 30 pass, and the queue of 4 counts across both", { timeout: 90_000 }, async () => {
    const fleet = await startFleet(2, fleetToml(up.port, prefix), "api");
    const pending: Sent[] = [];
    try {
      await insideOneMinute();
      const [a, b] = fleet.ports as [number, number];
      // 30 requests, one at each gateway at a time: every one passes.
      for (let i = 0; i < 15; i++) {
        const statuses = await Promise.all([statusOf(send(a, "/token")), statusOf(send(b, "/token"))]);
        assert.deepEqual(statuses, [200, 200], `pair ${i}`);
      }
      assert.equal(up.seen.filter((s) => s.path === "/token").length, 30);
      // The window is spent. Three more at each gateway: four wait (across both), two are refused at once.
      const extra: Sent[] = [];
      for (let i = 0; i < 3; i++) extra.push(send(a, "/token"), send(b, "/token"));
      pending.push(...extra);
      const answered: (number | string)[] = [];
      for (const s of extra) void s.status.then((code) => answered.push(code), (e: Error) => answered.push(e.message));
      await withTimeout(
        new Promise<void>((resolve) => {
          const tick = (): void => (answered.length >= 2 ? resolve() : void setTimeout(tick, 20));
          tick();
        }),
        10_000,
        "two refusals (a queue per gateway would have taken all six)",
      );
      assert.deepEqual(answered, [429, 429]);
      // One more at each gateway: the queue is still full.
      assert.equal(await statusOf(send(a, "/token")), 429);
      assert.equal(await statusOf(send(b, "/token")), 429);
      assert.equal(answered.length, 2, "the other four still wait for the next window");
      assert.equal(up.seen.filter((s) => s.path === "/token").length, 30, "exactly 30 reached the upstream in the window");
    } catch (e) {
      // The gateways' own account of what happened, for a failure's report.
      throw new Error(`${(e as Error).message}\n${fleet.procs.map((p, i) => `gateway ${i}: ${p.stdout.slice(-3000)}${p.stderr.slice(-1000)}`).join("\n")}`, { cause: e });
    } finally {
      for (const s of pending) s.req.destroy();
      await fleet.stop();
    }
  });

  test("a user locked out through one gateway is refused at the other", { timeout: 60_000 }, async () => {
    const fleet = await startFleet(2, fleetToml(up.port, `${prefix}lock:`), "api");
    try {
      const [a, b] = fleet.ports as [number, number];
      const login = (port: number, password: string): Promise<number> => statusOf(send(port, "/login", `username=carol&password=${password}`));
      assert.equal(await login(a, "wrong"), 401);
      assert.equal(await login(b, "wrong"), 401);
      assert.equal(await login(a, "wrong"), 401);
      // The failures are recorded once each response is sent; the lock is in Redis a moment later
      // (a success does not reset the count here, so asking does not undo what it waits for).
      await withTimeout(
        (async () => {
          while ((await login(b, "right")) !== 429) await sleep(50);
        })(),
        5000,
        "the lock to show at the other gateway",
      );
      assert.equal(await login(a, "right"), 429);
    } finally {
      await fleet.stop();
    }
  });
});

describe("the lockout's cache follows the fleet", () => {
  const prefix = fleetPrefix("http-unlock");
  let up: Upstream;
  let store: RedisStore | undefined;
  before(async () => {
    up = await startUpstream();
  });
  after(async () => {
    await store?.close();
    await up.close();
    await deletePrefix(prefix);
  });

  test("a lock lifted elsewhere in the fleet is lifted at every gateway at once (pub/sub), not at the cached lock's end", { timeout: 60_000 }, async () => {
    const fleet = await startFleet(2, fleetToml(up.port, prefix), "api");
    try {
      const [a, b] = fleet.ports as [number, number];
      const login = (port: number, password: string): Promise<number> => statusOf(send(port, "/login", `username=dave&password=${password}`));
      // Logs in at B until it answers `want`; a failure tells what B answered meanwhile, and what both gateways logged.
      const untilB = async (want: number, ms: number, what: string): Promise<void> => {
        const seen: number[] = [];
        let stop = false;
        try {
          await withTimeout(
            (async () => {
              while (!stop && seen.at(-1) !== want) {
                seen.push(await login(b, "right"));
                if (seen.at(-1) !== want) await sleep(50);
              }
            })(),
            ms,
            what,
          );
        } catch (e) {
          const logs = fleet.procs.map((p, i) => `gateway ${i}:\n${p.stdout.slice(-2000)}${p.stderr.slice(-1000)}`).join("\n");
          throw new Error(`${(e as Error).message}; B answered ${seen.join(" ")}\n${logs}`, { cause: e });
        } finally {
          stop = true;
        }
      };
      for (let i = 0; i < 3; i++) assert.equal(await login(a, "wrong"), 401);
      await untilB(429, 10_000, "the lock at B");
      // B now holds the lock in its cache. An operator's tool on the same Redis lifts it (the box the listener "api" uses).
      store = new RedisStore({ url: REDIS_URL, prefix, timeoutMs: 2000 });
      assert.ok(await store.ready(5000));
      const tool = new Lockout<false>({ maxFailures: 3, windowMs: 900_000, durationMs: 900_000 }, resolveProfile("default"), systemClock, store, "http-lockout:api");
      assert.equal(await tool.unlock("dave"), true);
      await tool.close();
      // Bounded generously for a loaded machine (each try is a request through the gateway, and both
      // gateways share two cores with whatever else runs): the cached lock it replaces would hold for
      // 15 minutes, so any lift within this bound came from the broadcast.
      await untilB(200, 10_000, "the unlock at B (its cached lock has 15 minutes left)");
      assert.equal(await login(a, "right"), 200);
    } finally {
      await fleet.stop();
    }
  });
});
