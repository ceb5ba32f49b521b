import { describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { rm } from "node:fs/promises";
import { makeTestPki } from "../helpers/certs.js";
import { Client, startEcho, startGateway, withTimeout } from "./fixtures.js";
import { sleep } from "../helpers/wait.js";

function tcpDoc(upstreamPort: number, extra: Record<string, unknown> = {}, guard: Record<string, unknown> = {}): Record<string, unknown> {
  return { log: { format: "json" }, guard, listener: [{ name: "relay", kind: "tcp", bind: "127.0.0.1:0", upstream: `127.0.0.1:${upstreamPort}`, ...extra }] };
}

describe("tcp listener", () => {
  test("relays both ways and passes a half-close on, with data still flowing back", async () => {
    // The upstream answers only once the client has finished sending: that needs a correct half-close.
    const upstream = net.createServer({ allowHalfOpen: true }, (s) => {
      const got: Buffer[] = [];
      s.on("data", (d: Buffer) => got.push(d));
      s.on("end", () => s.end(`got ${Buffer.concat(got).length} bytes`));
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const gw = await startGateway(tcpDoc((upstream.address() as net.AddressInfo).port));
    try {
      const c = new Client(gw.port);
      await c.connected();
      const payload = Buffer.alloc(3 * 1024 * 1024, 7);
      c.socket.end(payload);
      await c.waitClosed(10_000);
      assert.equal(c.text(), `got ${payload.length} bytes`);
    } finally {
      await gw.stop();
      upstream.close();
    }
  });

  test("the guard applies before the upstream is touched", async () => {
    const echo = await startEcho();
    let upstreamConnections = 0;
    const gw = await startGateway(tcpDoc(echo.port, {}, { max_connections_per_ip: 1 }));
    gw.gateway.events.on("connection", () => upstreamConnections++);
    try {
      const a = new Client(gw.port, "127.0.11.1");
      await a.connected();
      a.write("ping");
      await a.until(() => a.text() === "ping", 5000, "echo");
      const b = new Client(gw.port, "127.0.11.1");
      await b.waitClosed();
      assert.equal(b.received.length, 0);
      assert.equal(upstreamConnections, 1);
      a.destroy();
    } finally {
      await gw.stop();
      await echo.close();
    }
  });

  test("an idle connection is closed on both sides after idle_timeout", async () => {
    const echo = await startEcho();
    const gw = await startGateway(tcpDoc(echo.port, { idle_timeout: "500ms" }));
    try {
      const c = new Client(gw.port);
      await c.connected();
      c.write("x");
      await c.until(() => c.text() === "x", 5000, "echo");
      await c.waitClosed(5000);
      // The gateway's own close event follows its destroy by a tick or two.
      for (let i = 0; i < 50 && gw.gateway.openConnections > 0; i++) await sleep(10);
      assert.equal(gw.gateway.openConnections, 0);
      assert.equal(gw.log.events("conn_close").length, 1);
    } finally {
      await gw.stop();
      await echo.close();
    }
  });

  test("a reset upstream closes the client too", async () => {
    const upstream = net.createServer((s) => s.resetAndDestroy());
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const gw = await startGateway(tcpDoc((upstream.address() as net.AddressInfo).port));
    try {
      const c = new Client(gw.port);
      await c.connected();
      await c.waitClosed(5000);
    } finally {
      await gw.stop();
      upstream.close();
    }
  });

  test("terminates TLS and relays the plaintext", async () => {
    const pki = await makeTestPki();
    const echo = await startEcho();
    const gw = await startGateway(tcpDoc(echo.port, { tls: { cert: pki.serverCertPath, key: pki.serverKeyPath } }));
    try {
      const s = tls.connect({ port: gw.port, host: "127.0.0.1", servername: "localhost", ca: pki.caCert });
      s.on("error", () => {});
      await withTimeout(new Promise((r) => s.once("secureConnect", r)), 5000, "tls");
      s.write("over tls");
      const got = await withTimeout(new Promise<string>((r) => s.once("data", (d: Buffer) => r(d.toString()))), 5000, "echo");
      assert.equal(got, "over tls");
      s.destroy();
    } finally {
      await gw.stop();
      await echo.close();
      await rm(pki.dir, { recursive: true, force: true });
    }
  });
});
