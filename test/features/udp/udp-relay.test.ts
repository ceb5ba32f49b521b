import { describe, test } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { once } from "node:events";
import { ManualClock, systemClock } from "../../../src/core/clock.js";
import { createUdpRelay } from "../../../src/features/udp/udp-relay.js";
import { FlowTable } from "../../../src/features/udp/flow-table.js";
import { sleep } from "../../helpers/wait.js";

/** An upstream that echoes every datagram and counts them. */
async function echoUpstream(): Promise<{ port: number; received: () => number; close(): void }> {
  const s = dgram.createSocket("udp4");
  let n = 0;
  s.on("message", (m, r) => {
    n++;
    s.send(m, r.port, r.address);
  });
  s.bind(0, "127.0.0.1");
  await once(s, "listening");
  return { port: s.address().port, received: () => n, close: () => s.close() };
}

async function client(localAddress = "127.0.0.1"): Promise<dgram.Socket & { got: () => number }> {
  const c = dgram.createSocket("udp4") as dgram.Socket & { got: () => number };
  let n = 0;
  c.on("message", () => n++);
  c.got = () => n;
  c.bind(0, localAddress);
  await once(c, "listening");
  return c;
}

describe("UDP relay", { timeout: 30_000 }, () => {
  test("relays datagrams both ways and a flood at 10x the packet cap delivers exactly the cap and drops the rest", async () => {
    // The caps run on the injected clock: each 20 ms step of virtual time the client sends 40
    // datagrams (2,000/s, 10x the cap), and the clock advances only once every one of them, and
    // every echo, has been relayed or dropped. What is admitted is then a function of the clock
    // alone (burst + rate x elapsed), however slowly the machine delivers the datagrams.
    const up = await echoUpstream();
    const clock = new ManualClock(0);
    const pps = 200;
    const burst = 10;
    const relay = await createUdpRelay({
      bind: { host: "127.0.0.1", port: 0 },
      upstream: { host: "127.0.0.1", port: up.port },
      perClient: { bytesPerSecond: 10 * 1024 * 1024, packetsPerSecond: pps, burstPackets: burst },
      maxFlows: 100,
      flowIdleMs: 10_000,
      maxFlowsPerIp: 10,
      clock,
    });
    const c = await client("127.0.0.2");
    try {
      const payload = Buffer.alloc(100, 1);
      const steps = 150;
      const perStep = 40;
      const stepMs = 20;
      let sent = 0;
      const deadline = systemClock.now() + 20_000;
      for (let step = 0; step < steps; step++) {
        for (let k = 0; k < perStep; k++) c.send(payload, relay.address.port, "127.0.0.1");
        sent += perStep;
        const k = relay.counters;
        const settled = (): boolean =>
          k.packetsUp + k.packetsDroppedUp === sent && up.received() === k.packetsUp && k.packetsDown + k.packetsDroppedDown === k.packetsUp && c.got() === k.packetsDown;
        while (!settled()) {
          if (systemClock.now() > deadline) assert.fail(`step ${step}: datagrams not settled: ${JSON.stringify(k)}, upstream ${up.received()}, client ${c.got()}`);
          await sleep(1);
        }
        clock.advance(stepMs);
      }
      const k = relay.counters;
      // Tokens: the burst at t = 0, then pps x 20 ms = 4 per step for the 149 steps after the first.
      const expected = burst + (pps * stepMs * (steps - 1)) / 1000;
      console.log(`# UDP flood: sent ${sent} over ${(steps * stepMs) / 1000} s of clock, relayed ${k.packetsUp} (cap ${expected}), dropped ${k.packetsDroppedUp}, echoed back ${c.got()}`);
      assert.equal(k.packetsUp, expected, "the cap, to the datagram");
      assert.equal(k.packetsDroppedUp, sent - expected, "the rest dropped and counted");
      assert.equal(k.bytesUp, expected * payload.length);
      assert.equal(k.bytesDroppedUp, (sent - expected) * payload.length);
      assert.equal(up.received(), k.packetsUp, "everything admitted reached upstream");
      assert.equal(k.packetsDown, k.packetsUp, "the echoes are within the download cap: all relayed back");
      assert.equal(k.packetsDroppedDown, 0);
      assert.equal(c.got(), k.packetsDown, "replies come back through the same flow");
      assert.equal(relay.flows, 1);
    } finally {
      c.close();
      await relay.close();
      up.close();
    }
  });

  test("the byte cap drops datagrams that would exceed it", async () => {
    const up = await echoUpstream();
    const clock = new ManualClock(0);
    const relay = await createUdpRelay({
      bind: { host: "127.0.0.1", port: 0 },
      upstream: { host: "127.0.0.1", port: up.port },
      perClient: { bytesPerSecond: 1000, packetsPerSecond: 1000 },
      maxFlows: 10,
      flowIdleMs: 60_000,
      maxFlowsPerIp: 10,
      clock,
    });
    const c = await client();
    for (let i = 0; i < 5; i++) c.send(Buffer.alloc(400), relay.address.port, "127.0.0.1");
    c.send(Buffer.alloc(1500), relay.address.port, "127.0.0.1");
    const deadline = systemClock.now() + 5000;
    while (relay.counters.packetsUp + relay.counters.packetsDroppedUp < 6 && systemClock.now() < deadline) await sleep(10);
    assert.equal(relay.counters.packetsUp, 2, "1000 bytes of burst: two 400-byte datagrams");
    assert.equal(relay.counters.packetsDroppedUp, 4, "the rest, and the one larger than the burst");
    assert.equal(relay.counters.bytesDroppedUp, 3 * 400 + 1500);
    c.close();
    await relay.close();
    up.close();
  });

  test("flows expire when idle, the table never exceeds its cap, and one address is held to its per-IP cap", async () => {
    const up = await echoUpstream();
    const clock = new ManualClock(0);
    const relay = await createUdpRelay({
      bind: { host: "127.0.0.1", port: 0 },
      upstream: { host: "127.0.0.1", port: up.port },
      perClient: { bytesPerSecond: 1e6, packetsPerSecond: 1e4 },
      maxFlows: 8,
      flowIdleMs: 1000,
      maxFlowsPerIp: 3,
      clock,
    });
    const clients: dgram.Socket[] = [];
    // 5 sockets from one address: only 3 flows.
    for (let i = 0; i < 5; i++) clients.push(await client("127.0.0.5"));
    // 10 more addresses, one socket each: the table holds at most 8.
    for (let i = 0; i < 10; i++) clients.push(await client(`127.0.0.${10 + i}`));
    let maxSeen = 0;
    for (const c of clients) {
      c.send(Buffer.from("x"), relay.address.port, "127.0.0.1");
      await sleep(5);
      maxSeen = Math.max(maxSeen, relay.flows);
    }
    const deadline = systemClock.now() + 5000;
    while (relay.counters.packetsUp + relay.counters.packetsDroppedFlowCap < 15 && systemClock.now() < deadline) await sleep(10);
    assert.equal(relay.flowsOf("127.0.0.5"), 3);
    assert.equal(relay.flows, 8);
    assert.ok(maxSeen <= 8);
    assert.equal(relay.counters.packetsDroppedFlowCap, 7, "2 over the per-IP cap, 5 over the table cap");
    // Idle for longer than flowIdleMs: the sweep (one timer for the table) expires every flow.
    clock.advance(2000);
    assert.equal(relay.flows, 0);
    assert.equal(relay.counters.flowsExpired, 8);
    // Room again: a new client gets a flow.
    clients[14]!.send(Buffer.from("y"), relay.address.port, "127.0.0.1");
    const d2 = systemClock.now() + 5000;
    while (relay.flows === 0 && systemClock.now() < d2) await sleep(10);
    assert.equal(relay.flows, 1);
    for (const c of clients) c.close();
    await relay.close();
    up.close();
  });

  test("FlowTable: a churn of 100,000 one-off clients never grows it past its cap", () => {
    let expired = 0;
    const t = new FlowTable<{ ip: string; lastSeen: number }>({ maxFlows: 500, maxFlowsPerIp: 4, idleMs: 40 }, () => expired++);
    let max = 0;
    let refused = 0;
    for (let i = 0; i < 100_000; i++) {
      const ip = `10.0.${(i >> 8) & 255}.${i & 255}`;
      const r = t.admit(`${ip}|${i}`, ip, i / 10, () => ({ ip, lastSeen: 0 }));
      if ("refused" in r) refused++;
      max = Math.max(max, t.size);
    }
    assert.ok(max <= 500, `${max}`);
    assert.ok(expired > 90_000, `idle flows reclaimed at admission: ${expired}`);
    assert.equal(refused, 0, "at 10 new flows per ms and 40 ms idle, expiry keeps room");
  });
});
