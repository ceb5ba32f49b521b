/**
 * The relay path of a Gateway with and without `[bandwidth]`: which
 * connections take the shaper, byte-exact data and half-close through it,
 * the idle timeout, the `bytes` totals, throttle time reaching the metrics,
 * and a reload that turns shaping on.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, createHash } from "node:crypto";
import net from "node:net";
import { GatewayMetrics } from "../../../src/metrics/gateway-metrics.js";
import { configOf, startEcho, startGateway, withTimeout, type Running } from "../../gateway/fixtures.js";
import { bandwidthDoc, openTunnel } from "./gateway-harness.js";
import { waitUntil, sleep } from "../../helpers/wait.js";

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

/** Sends `data` through the tunnel to the echo server, half-closes, and collects what comes back until the FIN. */
async function echoThrough(s: net.Socket, data: Buffer, ms = 10_000): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on("data", (d: Buffer) => parts.push(d));
  const ended = new Promise<void>((r) => s.once("end", () => r()));
  s.resume();
  s.end(data);
  await withTimeout(ended, ms, "echo end");
  return Buffer.concat(parts);
}

describe("gateway relay with bandwidth", () => {
  test("without [bandwidth] the plain relay carries the tunnel: byte-exact, half-close, bytes totals", async () => {
    const echo = await startEcho();
    const gw = await startGateway(await bandwidthDoc(undefined));
    const totals: Record<string, number> = {};
    gw.gateway.events.on("bytes", (e) => (totals[e.direction] = (totals[e.direction] ?? 0) + e.bytes));
    try {
      assert.equal(gw.gateway.bandwidth.enabled, false);
      const s = await openTunnel(gw.port, echo.port, "alice");
      assert.equal(gw.gateway.bandwidth.shapedConnections, 0);
      const data = randomBytes(1024 * 1024);
      const back = await echoThrough(s, data);
      assert.equal(sha(back), sha(data));
      s.destroy();
      await waitUntil(() => totals.out === data.length, { timeoutMs: 5000, intervalMs: 10, message: "bytes totals" });
      assert.deepEqual(totals, { in: data.length, out: data.length });
    } finally {
      await gw.stop();
      await echo.close();
    }
  });

  test("with a cap the shaper carries the tunnel: byte-exact both ways, half-close, bytes totals", async () => {
    const echo = await startEcho();
    const gw = await startGateway(await bandwidthDoc({ per_ip: { bytes_per_second: "8MiB" } }));
    const totals: Record<string, number> = {};
    gw.gateway.events.on("bytes", (e) => (totals[e.direction] = (totals[e.direction] ?? 0) + e.bytes));
    try {
      const s = await openTunnel(gw.port, echo.port, "alice");
      assert.equal(gw.gateway.bandwidth.shapedConnections, 1);
      const data = randomBytes(1024 * 1024 + 17);
      const back = await echoThrough(s, data);
      assert.equal(sha(back), sha(data));
      s.destroy();
      await waitUntil(() => gw.gateway.bandwidth.shapedConnections === 0, { timeoutMs: 5000, intervalMs: 10, message: "shaped connection released" });
      await waitUntil(() => totals.out === data.length, { timeoutMs: 5000, intervalMs: 10, message: "bytes totals" });
      assert.deepEqual(totals, { in: data.length, out: data.length });
      assert.equal(gw.gateway.bandwidth.metrics().upload.bytesRelayed, data.length);
    } finally {
      await gw.stop();
      await echo.close();
    }
  });

  test("only connections a cap applies to are shaped: an identity override alone leaves others on the plain relay", async () => {
    const echo = await startEcho();
    const gw = await startGateway(await bandwidthDoc({ overrides: { bob: { bytes_per_second: "1MiB" }, alice: "unlimited" } }));
    try {
      assert.equal(gw.gateway.bandwidth.enabled, true);
      const a = await openTunnel(gw.port, echo.port, "alice");
      assert.equal(gw.gateway.bandwidth.shapedConnections, 0);
      const b = await openTunnel(gw.port, echo.port, "bob", "127.0.0.2");
      assert.equal(gw.gateway.bandwidth.shapedConnections, 1);
      a.destroy();
      b.destroy();
    } finally {
      await gw.stop();
      await echo.close();
    }
  });

  test("a per_ip cap shapes tcp listener connections, and a CIDR override can lift it", async () => {
    const echo = await startEcho();
    const gw: Running = await startGateway({
      log: { format: "json", level: "warn" },
      listener: [{ name: "front", kind: "tcp", bind: "127.0.0.1:0", upstream: `127.0.0.1:${echo.port}` }],
      bandwidth: { per_ip: { bytes_per_second: "1MiB" }, overrides: { "127.0.0.3/32": "unlimited" } },
    });
    const socks: net.Socket[] = [];
    try {
      const open = async (local: string): Promise<void> => {
        const s = net.connect({ port: gw.port, host: "127.0.0.1", localAddress: local });
        s.on("error", () => {});
        socks.push(s);
        await withTimeout(new Promise<void>((r) => s.once("connect", () => r())), 5000, "connect");
      };
      await open("127.0.0.2");
      await waitUntil(() => gw.gateway.bandwidth.shapedConnections === 1, { timeoutMs: 5000, intervalMs: 10, message: "shaped" });
      await open("127.0.0.3");
      await sleep(100);
      assert.equal(gw.gateway.bandwidth.shapedConnections, 1);
    } finally {
      for (const s of socks) s.destroy();
      await gw.stop();
      await echo.close();
    }
  });

  test("a shaped tunnel with no bytes either way is closed after idle_timeout", async () => {
    const echo = await startEcho();
    const doc = await bandwidthDoc({ per_identity: { bytes_per_second: "1MiB" } });
    (doc.listener as Array<Record<string, unknown>>)[0]!.idle_timeout = "300ms";
    const gw = await startGateway(doc);
    try {
      const s = await openTunnel(gw.port, echo.port, "alice");
      assert.equal(gw.gateway.bandwidth.shapedConnections, 1);
      // The gateway ends the tunnel: the client sees the end of the stream.
      const ended = new Promise<void>((r) => s.once("end", () => r()));
      s.resume();
      await withTimeout(ended, 3000, "idle close");
      await waitUntil(() => gw.gateway.bandwidth.shapedConnections === 0, { timeoutMs: 2000, intervalMs: 10, message: "released" });
    } finally {
      await gw.stop();
      await echo.close();
    }
  });

  test("throttle time reaches portcullis_throttle_seconds_total", async () => {
    const echo = await startEcho();
    const gw = await startGateway(await bandwidthDoc({ per_identity: { bytes_per_second: "256KiB", burst: "16KiB" } }));
    const metrics = new GatewayMetrics(gw.gateway, { processMetrics: false });
    try {
      const s = await openTunnel(gw.port, echo.port, "alice");
      const data = randomBytes(128 * 1024);
      const back = await echoThrough(s, data);
      assert.equal(back.length, data.length);
      s.destroy();
      await waitUntil(() => gw.gateway.bandwidth.shapedConnections === 0, { timeoutMs: 5000, intervalMs: 10, message: "released" });
      const text = await metrics.registry.metrics();
      const seconds = (dir: string): number => Number(new RegExp(`portcullis_throttle_seconds_total\\{direction="${dir}"\\} ([0-9.e+-]+)`).exec(text)?.[1] ?? NaN);
      // 128 KiB at 256 KiB/s after a 16 KiB burst waits about 0.44 s each way.
      assert.ok(seconds("in") > 0.2 && seconds("in") < 5, `in: ${seconds("in")}`);
      // The echo sends back at the rate it receives, so the download direction seldom waits.
      assert.ok(seconds("out") >= 0 && seconds("out") < 1, `out: ${seconds("out")}`);
    } finally {
      metrics.close();
      await gw.stop();
      await echo.close();
    }
  });

  test("a reload that adds a cap shapes the next connections", async () => {
    const echo = await startEcho();
    const doc = await bandwidthDoc(undefined);
    const gw = await startGateway(doc);
    try {
      const a = await openTunnel(gw.port, echo.port, "alice");
      assert.equal(gw.gateway.bandwidth.shapedConnections, 0);
      await gw.gateway.reload(configOf({ ...doc, bandwidth: { per_identity: { bytes_per_second: "1MiB" } } }));
      assert.equal(gw.gateway.bandwidth.enabled, true);
      const b = await openTunnel(gw.port, echo.port, "alice");
      assert.equal(gw.gateway.bandwidth.shapedConnections, 1);
      a.destroy();
      b.destroy();
    } finally {
      await gw.stop();
      await echo.close();
    }
  });
});

describe("gateway bandwidth bookkeeping", () => {
  test("a tunnel whose upstream refuses gives its shaping back", async () => {
    const gw = await startGateway(await bandwidthDoc({ per_identity: { bytes_per_second: "1MiB" } }));
    try {
      // A port nothing listens on: the upstream is refused and the client gets 502.
      const probe = net.createServer();
      await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
      const deadPort = (probe.address() as net.AddressInfo).port;
      await new Promise<void>((r) => probe.close(() => r()));
      await assert.rejects(openTunnel(gw.port, deadPort, "alice"), /502/);
      await waitUntil(() => gw.gateway.bandwidth.shapedConnections === 0, { timeoutMs: 3000, intervalMs: 10, message: "shaping released" });
    } finally {
      await gw.stop();
    }
  });
});
