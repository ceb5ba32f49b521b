import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/core/clock.js";
import { ConnectionGuard } from "../../src/gateway/guard/connection-guard.js";
import { MemoryStore } from "../../src/stores/memory-store.js";
import { Client, configOf, connectDoc, connectHead, probe, startGateway, withTimeout } from "./fixtures.js";
import { memoryBox } from "../helpers/memory-box.js";
import { waitUntil } from "../helpers/wait.js";


describe("guard at accept", () => {
  test("the (N+1)th concurrent connection from one IP is refused; other IPs are unaffected; a slot frees on close", async () => {
    const gw = await startGateway(await connectDoc({ guard: { max_connections_per_ip: 2 } }));
    try {
      const a = await probe(gw.port, "127.0.0.2");
      const b = await probe(gw.port, "127.0.0.2");
      assert.ok(a.served && b.served);
      const c = await probe(gw.port, "127.0.0.2");
      assert.equal(c.served, false);
      await c.client.waitClosed();
      assert.equal(c.client.received.length, 0, "a refusal is a silent close");
      const other = await probe(gw.port, "127.0.0.3");
      assert.equal(other.served, true);
      const other2 = await probe(gw.port, "127.0.0.4");
      assert.equal(other2.served, true);
      a.client.destroy();
      // The server sees a client's close a moment after the client does.
      await waitUntil(
        async () => {
          const p = await probe(gw.port, "127.0.0.2");
          p.client.destroy();
          return p.served;
        },
        { timeoutMs: 1_000, intervalMs: 20, message: "slot freed after close" },
      );
      const limited = gw.log.events("limited");
      assert.ok(limited.some((e) => e.remote_addr === "127.0.0.2" && e.limiter === "max_connections_per_ip" && e.reason === "concurrency_limit"));
      assert.ok((gw.gateway.refusalCounts().get("max_connections_per_ip:concurrency_limit") ?? 0) >= 1);
      for (const p of [b, other, other2]) p.client.destroy();
    } finally {
      await gw.stop();
    }
  });

  test("the global cap refuses any address once reached", async () => {
    const gw = await startGateway(await connectDoc({ guard: { max_connections: 2 } }));
    try {
      const a = await probe(gw.port, "127.0.1.1");
      const b = await probe(gw.port, "127.0.1.2");
      const c = await probe(gw.port, "127.0.1.3");
      assert.deepEqual([a.served, b.served, c.served], [true, true, false]);
      assert.ok(gw.log.events("limited").some((e) => e.limiter === "max_connections"));
      a.client.destroy();
      b.client.destroy();
    } finally {
      await gw.stop();
    }
  });

  test("connection rate per IP, on the manual clock", async () => {
    const clock = new ManualClock();
    const gw = await startGateway(await connectDoc({ guard: { connection_rate: { limit: 3, window: "10s" } } }), { clock });
    try {
      for (let i = 0; i < 3; i++) {
        const p = await probe(gw.port, "127.0.2.1");
        assert.equal(p.served, true, `connection ${i + 1}`);
        p.client.destroy();
      }
      const fourth = await probe(gw.port, "127.0.2.1");
      assert.equal(fourth.served, false);
      const elsewhere = await probe(gw.port, "127.0.2.2");
      assert.equal(elsewhere.served, true);
      elsewhere.client.destroy();
      clock.advance(10_000);
      const later = await probe(gw.port, "127.0.2.1");
      assert.equal(later.served, true);
      later.client.destroy();
      assert.ok(gw.log.events("limited").some((e) => e.limiter === "connection_rate" && e.reason === "rate_limited"));
    } finally {
      await gw.stop();
    }
  });

  test("per-prefix connection rate counts a /24 together", async () => {
    const clock = new ManualClock();
    const gw = await startGateway(await connectDoc({ guard: { prefix_connection_rate: { limit: 2, window: "1m", ipv4_prefix: 24 } } }), { clock });
    try {
      const a = await probe(gw.port, "127.0.3.1");
      const b = await probe(gw.port, "127.0.3.2");
      const c = await probe(gw.port, "127.0.3.3");
      const d = await probe(gw.port, "127.0.4.1");
      assert.deepEqual([a.served, b.served, c.served, d.served], [true, true, false, true]);
      for (const p of [a, b, c, d]) p.client.destroy();
    } finally {
      await gw.stop();
    }
  });

  test("a ban after the configured failures closes open connections, refuses new ones, expires after its duration and doubles for a repeat", async () => {
    const clock = new ManualClock();
    const gw = await startGateway(
      await connectDoc({ guard: { max_auth_attempts: 10, ban: { failures: 3, window: "60s", duration: "10m", max_duration: "1h", backoff_after: 10 } } }),
      { clock },
    );
    const fail = async (c: Client, times: number): Promise<void> => {
      for (let i = 0; i < times && !c.closed; i++) {
        const before = (c.text().match(/407/g) ?? []).length;
        c.write(connectHead("127.0.0.1:1", { user: "alice", password: "wrong" }));
        await c.until(() => (c.text().match(/407/g) ?? []).length > before, 5000, "407");
      }
    };
    try {
      const bystander = await probe(gw.port, "127.0.5.1");
      assert.equal(bystander.served, true);
      const attacker = new Client(gw.port, "127.0.5.1");
      await attacker.connected();
      await fail(attacker, 3);
      await attacker.waitClosed();
      await bystander.client.waitClosed();
      const bans = gw.log.events("ban");
      assert.equal(bans.length, 1);
      assert.equal(bans[0]!.remote_addr, "127.0.5.1");
      assert.equal(bans[0]!.failures, 3);
      assert.equal(bans[0]!.until, new Date(clock.wallNow() + 600_000).toISOString());
      assert.equal((await probe(gw.port, "127.0.5.1")).served, false);
      assert.equal((await probe(gw.port, "127.0.5.2")).served, true, "a neighbour is not banned");
      assert.deepEqual([...memoryBox(gw.gateway).banned()].map((b) => b.key), ["127.0.5.1"]);

      clock.advance(600_001);
      const again = new Client(gw.port, "127.0.5.1");
      await again.connected();
      again.write(connectHead("127.0.0.1:1"));
      await again.until(() => again.text().includes("407"), 5000, "served after the ban");
      await fail(again, 3);
      await again.waitClosed();
      clock.advance(600_001);
      assert.equal((await probe(gw.port, "127.0.5.1")).served, false, "second ban lasts twice as long");
      clock.advance(600_000);
      assert.equal((await probe(gw.port, "127.0.5.1")).served, true);
    } finally {
      await gw.stop();
    }
  });

  test("with ban_closes_connections = false a ban leaves open connections alone", async () => {
    const clock = new ManualClock();
    const gw = await startGateway(await connectDoc({ guard: { ban_closes_connections: false, max_auth_attempts: 5, ban: { failures: 1 } } }), { clock });
    try {
      const bystander = await probe(gw.port, "127.0.6.1");
      const attacker = new Client(gw.port, "127.0.6.1");
      await attacker.connected();
      attacker.write(connectHead("127.0.0.1:1", { user: "alice", password: "wrong" }));
      await attacker.until(() => attacker.text().includes("407"), 5000, "407");
      await withTimeout(new Promise((r) => setTimeout(r, 100)), 1000, "settle");
      assert.equal(gw.log.events("ban").length, 1);
      assert.equal(bystander.client.closed, false);
      bystander.client.destroy();
      attacker.destroy();
    } finally {
      await gw.stop();
    }
  });

  test("allow-listed CIDRs are exempt from limits; deny-listed ones are refused at accept", async () => {
    const gw = await startGateway(await connectDoc({ guard: { max_connections_per_ip: 1, allow: ["127.0.7.0/24"], deny: ["127.0.8.8"] } }));
    try {
      const allowed = [await probe(gw.port, "127.0.7.1"), await probe(gw.port, "127.0.7.1"), await probe(gw.port, "127.0.7.1")];
      assert.ok(allowed.every((p) => p.served));
      const denied = await probe(gw.port, "127.0.8.8");
      assert.equal(denied.served, false);
      assert.equal(gw.gateway.refusalCounts().get("deny_list:deny_list"), 1);
      assert.ok(gw.log.events("limited").some((e) => e.remote_addr === "127.0.8.8" && e.limiter === "deny_list"));
      assert.equal((await probe(gw.port, "127.0.8.9")).served, true);
      for (const p of allowed) p.client.destroy();
    } finally {
      await gw.stop();
    }
  });

  test("a shadow limit is counted and logged, never enforced", async () => {
    const gw = await startGateway(await connectDoc({ guard: { max_connections_per_ip: { limit: 1, shadow: true } } }));
    try {
      const a = await probe(gw.port, "127.0.9.1");
      const b = await probe(gw.port, "127.0.9.1");
      assert.ok(a.served && b.served);
      assert.ok(gw.log.events("limited").some((e) => e.limiter === "max_connections_per_ip" && e.reason === "shadow_concurrency_limit"));
      assert.equal(gw.gateway.refusalCounts().get("max_connections_per_ip:concurrency_limit:shadow"), 1);
      a.client.destroy();
      b.client.destroy();
    } finally {
      await gw.stop();
    }
  });
});

describe("Gateway ban API", () => {
  test("ban() closes the address's connections, emits an event and refuses it; unban() lets it back", async () => {
    const gw = await startGateway(await connectDoc());
    try {
      const events: string[] = [];
      gw.gateway.events.on("ban", (b) => events.push(`ban ${b.key} closed=${b.closed}`));
      gw.gateway.events.on("unban", (u) => events.push(`unban ${u.key}`));
      const open = await probe(gw.port, "127.0.17.1");
      assert.equal(open.served, true);
      gw.gateway.ban("127.0.17.1", 60_000);
      await open.client.waitClosed();
      assert.equal((await probe(gw.port, "127.0.17.1")).served, false);
      assert.deepEqual([...memoryBox(gw.gateway).banned()].map((b) => b.key), ["127.0.17.1"]);
      assert.equal(gw.gateway.unban("127.0.17.1"), true);
      const back = await probe(gw.port, "127.0.17.1");
      assert.equal(back.served, true);
      back.client.destroy();
      assert.deepEqual(events, ["ban 127.0.17.1 closed=1", "unban 127.0.17.1"]);
      assert.equal(gw.log.events("unban").length, 1);
    } finally {
      await gw.stop();
    }
  });
});

describe("ConnectionGuard keys", () => {
  test("IPv6 clients are counted and banned by /64", async () => {
    const clock = new ManualClock();
    const cfg = configOf(await connectDoc({ guard: { max_connections_per_ip: 2 } })).guard;
    const guard = new ConnectionGuard(cfg, { clock, store: new MemoryStore() });
    const a = guard.admit("2001:db8:1:2::1");
    const b = guard.admit("2001:db8:1:2:ffff::9");
    assert.ok("release" in a && "release" in b);
    assert.equal(a.key, "2001:db8:1:2::/64");
    const c = guard.admit("2001:db8:1:2::77");
    assert.ok("limiter" in c && c.limiter === "max_connections_per_ip");
    assert.ok("release" in guard.admit("2001:db8:1:3::1"), "another /64 is another key");
    guard.penaltyBox.ban(guard.keyOf("2001:db8:9:9::1"), 1000);
    const banned = guard.admit("2001:db8:9:9:abcd::1");
    assert.ok("limiter" in banned && banned.limiter === "ban");
  });

  test("reconfiguring keeps live counts and bans", async () => {
    const clock = new ManualClock();
    const cfg = configOf(await connectDoc({ guard: { max_connections_per_ip: 2 } })).guard;
    const guard = new ConnectionGuard(cfg, { clock, store: new MemoryStore() });
    assert.ok("release" in guard.admit("192.0.2.1"));
    guard.penaltyBox.ban("192.0.2.99", 5000);
    guard.configure(configOf(await connectDoc({ guard: { max_connections_per_ip: 1, ban: { failures: 4 } } })).guard);
    const second = guard.admit("192.0.2.1");
    assert.ok("limiter" in second, "the connection held before the reload still counts");
    const banned = guard.admit("192.0.2.99");
    assert.ok("limiter" in banned && banned.limiter === "ban", "the ban survived a change of ban parameters");
    clock.advance(5001);
    assert.ok("release" in guard.admit("192.0.2.99"));
  });
});

describe("ConnectionGuard over a store", () => {
  test("on the memory store every answer is immediate: no promise on the admit, auth-check or failure path", async () => {
    const clock = new ManualClock();
    const cfg = configOf(await connectDoc({ guard: { connection_rate: { limit: 5, window: "1s" }, prefix_connection_rate: { limit: 50, window: "1s" } } })).guard;
    const guard = new ConnectionGuard(cfg, { clock, store: new MemoryStore() });
    assert.equal(guard.sync, true);
    const a = guard.admit("192.0.2.7");
    assert.ok(!(a instanceof Promise) && "release" in a);
    assert.ok(!((guard.authCheck(a.key) as unknown) instanceof Promise));
    assert.ok(!((guard.recordAuthFailure(a.key) as unknown) instanceof Promise));
    a.release();
    guard.close();
  });
});
