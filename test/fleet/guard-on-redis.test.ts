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
import { REDIS_URL, deletePrefix, uniquePrefix, waitFor } from "../redis/helpers.js";

const prefix = uniquePrefix("guard");
const stores: RedisStore[] = [];

after(async () => {
  for (const s of stores) await s.close();
  await deletePrefix(prefix);
});

async function guardOn(maxPerIp: number, leaseTtlMs: number): Promise<ConnectionGuard<false>> {
  const store = new RedisStore({ url: REDIS_URL, prefix, timeoutMs: 2000 });
  stores.push(store);
  assert.ok(await store.ready(5000));
  const cfg = configOf(await connectDoc({ guard: { max_connections_per_ip: maxPerIp } })).guard;
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
    await new Promise((r) => setTimeout(r, 1200));
    const refused = await b.admit("192.0.2.10");
    assert.ok("limiter" in refused && refused.limiter === "max_connections_per_ip");
    // A stops renewing (as if it had crashed): the slot frees within the TTL.
    a.close();
    await waitFor(async () => "release" in (await b.admit("192.0.2.10")), 2000, "the lapsed lease frees the slot");
    b.close();
  });

  test("a ban at one guard is refused at the other from its local cache", async () => {
    const a = await guardOn(10, 30_000);
    const b = await guardOn(10, 30_000);
    await a.penaltyBox.ban("192.0.2.20", 60_000);
    await waitFor(() => b.penaltyBox.isBanned("192.0.2.20"), 1000, "the broadcast ban in B's cache");
    const hit = await b.admit("192.0.2.20");
    assert.ok("limiter" in hit && hit.limiter === "ban");
    a.close();
    b.close();
  });
});
