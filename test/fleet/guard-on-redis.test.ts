/**
 * The connection guard on the Redis store, in process: admission answers a
 * promise, bans come from the local ban cache, leases are renewed while
 * held and lapse within their TTL once nobody renews them.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { systemClock } from "../../src/core/clock.js";
import { ConnectionGuard } from "../../src/gateway/guard/connection-guard.js";
import { RedisStore } from "../../src/stores/redis/redis-store.js";
import { configOf, connectDoc } from "../gateway/fixtures.js";
import { REDIS_URL, deletePrefix, uniquePrefix } from "../redis/helpers.js";
import { waitUntil, sleep } from "../helpers/wait.js";

const prefix = uniquePrefix("guard");
// The admission test counts the global cap: its own prefix keeps the other tests' lapsing leases out.
const admitPrefix = uniquePrefix("guard-admit");
const stores: RedisStore[] = [];

after(async () => {
  for (const s of stores) await s.close();
  await deletePrefix(prefix);
  await deletePrefix(admitPrefix);
});

async function guardOn(maxPerIp: number, leaseTtlMs: number, rest: Record<string, unknown> = {}, keyPrefix = prefix): Promise<ConnectionGuard<false>> {
  const store = new RedisStore({ url: REDIS_URL, prefix: keyPrefix, timeoutMs: 2000 });
  stores.push(store);
  assert.ok(await store.ready(5000));
  const cfg = configOf(await connectDoc({ guard: { max_connections_per_ip: maxPerIp, ...rest } })).guard;
  const guard = new ConnectionGuard(cfg, { clock: systemClock, store, leaseTtlMs });
  assert.ok(await guard.start(5000));
  return guard;
}

describe("ConnectionGuard on the Redis store", () => {
  test("held leases are renewed past their TTL; a guard that stops renewing frees its slots within it", async () => {
    const a = await guardOn(1, 400);
    const b = await guardOn(1, 400);
    const first = a.admit("192.0.2.10");
    assert.ok(first instanceof Promise, "a shared store answers a promise");
    const admitted = await first;
    assert.ok("release" in admitted);
    // Three TTLs later the lease still holds: it is renewed.
    await sleep(1200);
    const refused = await b.admit("192.0.2.10");
    assert.ok("limiter" in refused && refused.limiter === "max_connections_per_ip");
    // A stops renewing (as if it had crashed): the slot frees within the TTL.
    a.close();
    await waitUntil(async () => "release" in (await b.admit("192.0.2.10")), { timeoutMs: 2000, message: "the lapsed lease frees the slot" });
    b.close();
  });

  test("admission is all or nothing: a capped connection is charged no rate, a rate-limited one holds no slot", async () => {
    const g = await guardOn(1, 30_000, { connection_rate: { limit: 2, window: "1h" } }, admitPrefix);
    const ip = "192.0.2.30";
    const first = await g.admit(ip);
    assert.ok("release" in first);
    // The per-IP cap refuses these: they must not use up the rate's other unit.
    for (let i = 0; i < 3; i++) {
      const r = await g.admit(ip);
      assert.ok("limiter" in r && r.limiter === "max_connections_per_ip");
    }
    assert.equal((await g.peek("connection_rate", ip))!.remaining, 1, "only the admitted connection was charged");
    first.release();
    await waitUntil(async () => (await g.peek("max_connections_per_ip", ip))!.held === 0, { timeoutMs: 2000, message: "both leases ended" });
    assert.equal((await g.peek("max_connections", ip))!.held, 0);
    const second = await g.admit(ip);
    assert.ok("release" in second, "the rate's second unit was still there");
    second.release();
    await waitUntil(async () => (await g.peek("max_connections_per_ip", ip))!.held === 0, { timeoutMs: 2000, message: "the second connection's leases ended" });
    // The rate refuses the third: it keeps neither the per-IP nor the global slot.
    const third = await g.admit(ip);
    assert.ok("limiter" in third && third.limiter === "connection_rate");
    assert.equal((await g.peek("max_connections_per_ip", ip))!.held, 0);
    assert.equal((await g.peek("max_connections", ip))!.held, 0);
    g.close();
  });

  test("a ban at one guard is refused at the other from its local cache", async () => {
    const a = await guardOn(10, 30_000);
    const b = await guardOn(10, 30_000);
    await a.penaltyBox.ban("192.0.2.20", 60_000);
    await waitUntil(() => b.penaltyBox.isBanned("192.0.2.20"), { timeoutMs: 1000, message: "the broadcast ban in B's cache" });
    const hit = await b.admit("192.0.2.20");
    assert.ok("limiter" in hit && hit.limiter === "ban");
    a.close();
    b.close();
  });
});
