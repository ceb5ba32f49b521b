/**
 * The `udp` listener kind through a real Gateway: datagrams relayed both
 * ways, the per-client packet cap dropping the excess, the flow table caps,
 * and reloads (same settings keep the socket, new caps re-bind it).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { once } from "node:events";
import { configOf, startGateway, withTimeout } from "../../gateway/fixtures.js";
import { sleep } from "../../helpers/wait.js";

interface UdpUpstream {
  port: number;
  /** Datagrams received, by "address|port" of the sender. */
  received: Map<string, number>;
  total(): number;
  close(): Promise<void>;
}

/** A UDP server that counts datagrams per sender and, if `echo`, sends each back prefixed with "re:". */
async function startUdpUpstream(echo: boolean): Promise<UdpUpstream> {
  const sock = dgram.createSocket("udp4");
  const received = new Map<string, number>();
  sock.on("message", (msg, r) => {
    const k = `${r.address}|${r.port}`;
    received.set(k, (received.get(k) ?? 0) + 1);
    if (echo) sock.send(Buffer.concat([Buffer.from("re:"), msg]), r.port, r.address);
  });
  sock.bind(0, "127.0.0.1");
  await once(sock, "listening");
  return {
    port: sock.address().port,
    received,
    total: () => [...received.values()].reduce((a, b) => a + b, 0),
    close: () => new Promise<void>((r) => sock.close(() => r())),
  };
}

async function clientSocket(local = "127.0.0.1"): Promise<dgram.Socket> {
  const s = dgram.createSocket("udp4");
  s.bind(0, local);
  await once(s, "listening");
  return s;
}

/** Waits until `count()` stops changing for `quietMs` (bounded by `ms`). */
async function settled(count: () => number, quietMs: number, ms: number): Promise<number> {
  const end = Date.now() + ms;
  let last = -1;
  let since = Date.now();
  while (Date.now() < end) {
    const n = count();
    if (n !== last) {
      last = n;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return n;
    await sleep(20);
  }
  return count();
}

function udpDoc(upstreamPort: number, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    log: { format: "json", level: "warn" },
    listener: [{ name: "dns", kind: "udp", bind: "127.0.0.1:0", upstream: `127.0.0.1:${upstreamPort}`, ...extra }],
  };
}

describe("udp listener", () => {
  test("datagrams are relayed both ways, and the listener reports its kind and port on start", async () => {
    const up = await startUdpUpstream(true);
    const gw = await startGateway(udpDoc(up.port, {}));
    const c = await clientSocket();
    try {
      const b = gw.gateway.bound()[0]!;
      assert.equal(b.kind, "udp");
      assert.ok(b.port > 0);
      const replies: string[] = [];
      c.on("message", (m) => replies.push(m.toString()));
      for (const w of ["one", "two", "three"]) c.send(w, gw.port, "127.0.0.1");
      await withTimeout(
        (async () => {
          while (replies.length < 3) await sleep(10);
        })(),
        3000,
        "replies",
      );
      assert.deepEqual([...replies].sort(), ["re:one", "re:three", "re:two"]);
    } finally {
      c.close();
      await gw.stop();
      await up.close();
    }
  });

  test("packets_per_second drops the excess and counts it", async () => {
    const up = await startUdpUpstream(false);
    const gw = await startGateway(udpDoc(up.port, { packets_per_second: 50 }));
    const c = await clientSocket();
    try {
      const sent = 400;
      const started = Date.now();
      // In batches, so the kernel's receive buffer does not drop datagrams before the relay sees them.
      for (let i = 0; i < sent; i++) {
        c.send(Buffer.from(`p${i}`), gw.port, "127.0.0.1");
        if (i % 40 === 39) await sleep(5);
      }
      const elapsedS = (Date.now() - started) / 1000;
      const got = await settled(() => up.total(), 300, 5000);
      // The burst (one second of the rate) goes at once; after it, 50 per second (plus 0.25 s for the relay to catch up).
      const allowed = 50 + Math.ceil((elapsedS + 0.25) * 50);
      assert.ok(got >= 50 && got <= allowed, `relayed ${got} of ${sent} (allowed up to ${allowed})`);
      const counters = gw.gateway.udpCounters("dns")!;
      assert.equal(counters.packetsUp, got);
      // Every datagram the relay saw was relayed or dropped and counted (the kernel may lose a few before it).
      assert.ok(counters.packetsDroppedUp >= (sent - got) * 0.9 && counters.packetsDroppedUp <= sent - got, `dropped ${counters.packetsDroppedUp}`);
    } finally {
      c.close();
      await gw.stop();
      await up.close();
    }
  });

  test("max_flows_per_ip and max_flows hold", async () => {
    const up = await startUdpUpstream(false);
    const gw = await startGateway(udpDoc(up.port, { max_flows: 5, max_flows_per_ip: 3 }));
    const socks: dgram.Socket[] = [];
    try {
      for (let i = 0; i < 6; i++) socks.push(await clientSocket("127.0.0.2"));
      for (let i = 0; i < 4; i++) socks.push(await clientSocket("127.0.0.3"));
      for (const s of socks) s.send("hello", gw.port, "127.0.0.1");
      await settled(() => up.total(), 300, 5000);
      // Each flow has its own upstream socket, so the upstream sees one sender per admitted flow.
      assert.equal(up.received.size, 5);
      const counters = gw.gateway.udpCounters("dns")!;
      assert.equal(counters.flowsCreated, 5);
      assert.equal(counters.packetsDroppedFlowCap, 5);
    } finally {
      for (const s of socks) s.close();
      await gw.stop();
      await up.close();
    }
  });

  test("a reload with the same settings keeps the socket; a new cap takes effect", async () => {
    const up = await startUdpUpstream(false);
    const doc = udpDoc(up.port, { packets_per_second: 10 });
    const gw = await startGateway(doc);
    const c = await clientSocket();
    try {
      const port = gw.port;
      const same = await gw.gateway.reload(configOf(doc));
      assert.equal(same[0]!.port, port);
      const next = { ...doc, listener: [{ ...(doc.listener as Array<Record<string, unknown>>)[0]!, bind: `127.0.0.1:${port}`, packets_per_second: 100 }] };
      await gw.gateway.reload(configOf(next));
      for (let i = 0; i < 60; i++) c.send("x", port, "127.0.0.1");
      const got = await settled(() => up.total(), 300, 5000);
      // Under the old cap no more than ~10 would pass.
      assert.ok(got >= 60 * 0.9, `relayed ${got} of 60`);
    } finally {
      c.close();
      await gw.stop();
      await up.close();
    }
  });

  test("udp settings are validated", () => {
    assert.throws(() => configOf({ listener: [{ name: "u", kind: "udp", bind: "127.0.0.1:0" }] }), /upstream: required for kind "udp"/);
    assert.throws(
      () => configOf({ listener: [{ name: "t", kind: "tcp", bind: "127.0.0.1:0", upstream: "127.0.0.1:1", max_flows: 10 }] }),
      /max_flows: only for kind "udp"/,
    );
    assert.throws(() => configOf(udpDoc(1, { packets_per_second: 0 })), /packets_per_second/);
    const c = configOf(udpDoc(53, { bytes_per_second: "64KiB", flow_idle_timeout: "10s" }));
    assert.equal(c.listener[0]!.bytes_per_second, 65536);
    assert.equal(c.listener[0]!.flow_idle_timeout, 10_000);
  });
});
