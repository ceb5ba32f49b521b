/**
 * The read pump on real loopback sockets: push mode behaves like a plain
 * socket, direct mode moves a bulk stream to a pooled 64 KiB buffer and
 * gives it back, and an adopted accepted socket keeps the server's count.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import net from "node:net";
import { Writable } from "node:stream";
import { ReadBufferPool, adopt, connectPumped, pumpOf } from "../../src/gateway/read-pump.js";
import { withTimeout } from "../gateway/fixtures.js";

async function serve(onConnection: (s: net.Socket) => void): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer({ allowHalfOpen: true }, onConnection);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as net.AddressInfo).port };
}

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("read pump", () => {
  test("push mode delivers every byte through 'data', like a plain socket", async () => {
    const payload = randomBytes(3 * 1024 * 1024 + 17);
    const { server, port } = await serve((s) => s.end(payload));
    try {
      const pool = new ReadBufferPool();
      const s = connectPumped({ host: "127.0.0.1", port }, pool);
      assert.equal(pumpOf(s)?.mode, "push");
      const parts: Buffer[] = [];
      s.on("data", (d: Buffer) => parts.push(d));
      await withTimeout(new Promise((r) => s.once("end", r)), 10_000, "end");
      const got = Buffer.concat(parts);
      assert.equal(createHash("sha256").update(got).digest("hex"), createHash("sha256").update(payload).digest("hex"));
      // Push mode copies out of the socket's own small buffer; it never takes a big one.
      assert.equal(pool.idle, 0);
      assert.equal(pool.idleSmall, 0, "the socket holds its small buffer while open");
      s.destroy();
      await withTimeout(new Promise((r) => s.once("close", r)), 5000, "close");
      assert.equal(pool.idleSmall, 1, "a closed socket gives its small buffer back");
    } finally {
      server.close();
    }
  });

  test("direct mode: a bulk stream takes a 64 KiB buffer, and a short read gives it back", async () => {
    let peer: net.Socket | undefined;
    const { server, port } = await serve((s) => (peer = s));
    try {
      const pool = new ReadBufferPool();
      const s = connectPumped({ host: "127.0.0.1", port }, pool);
      await withTimeout(new Promise((r) => s.once("connect", r)), 5000, "connect");
      let received = 0;
      const sink = new Writable({
        write(chunk: Buffer, _enc, cb) {
          received += chunk.length;
          cb();
        },
      });
      pumpOf(s)!.direct(sink);
      assert.equal(pumpOf(s)!.mode, "direct");
      for (let i = 0; i < 50 && peer === undefined; i++) await tick(10);
      peer!.write(Buffer.alloc(4 * 1024 * 1024, 1));
      for (let i = 0; i < 300 && received < 4 * 1024 * 1024; i++) await tick(10);
      assert.equal(received, 4 * 1024 * 1024);
      // The big buffer is the socket's while the stream is bulk.
      assert.equal(pool.idle, 0);
      peer!.write("short");
      for (let i = 0; i < 300 && received < 4 * 1024 * 1024 + 5; i++) await tick(10);
      assert.equal(received, 4 * 1024 * 1024 + 5);
      assert.equal(pool.idle, 1, "a short read hands the 64 KiB buffer back");
      s.destroy();
      await withTimeout(new Promise((r) => s.once("close", r)), 5000, "close");
      // The next socket starts on the small buffer this one gave back.
      assert.equal(pool.idleSmall, 1);
      connectPumped({ host: "127.0.0.1", port }, pool).destroy();
      assert.equal(pool.idleSmall, 0);
    } finally {
      peer?.destroy();
      server.close();
    }
  });

  test("an adopted socket keeps the server's connection count: close() waits for it", async () => {
    const pool = new ReadBufferPool();
    let adopted: net.Socket | undefined;
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (raw) => {
      adopted = adopt(raw, pool);
      assert.ok(adopted, "this Node lets the gateway adopt an accepted socket");
      adopted.on("data", () => undefined);
      adopted.resume();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const c = net.connect({ host: "127.0.0.1", port: (server.address() as net.AddressInfo).port });
    try {
      await withTimeout(new Promise((r) => c.once("connect", r)), 5000, "connect");
      for (let i = 0; i < 50 && adopted === undefined; i++) await tick(10);
      let closed = false;
      server.close(() => (closed = true));
      await tick(50);
      assert.equal(closed, false, "the server still counts the adopted connection");
      // The adopted socket speaks for the accepted one: its peer and its bytes.
      assert.equal(adopted!.remotePort, c.localPort);
      c.write("hello");
      for (let i = 0; i < 50 && adopted!.bytesRead < 5; i++) await tick(10);
      assert.equal(adopted!.bytesRead, 5);
      adopted!.destroy();
      for (let i = 0; i < 50 && !closed; i++) await tick(10);
      assert.equal(closed, true, "closing the adopted socket lets the server close");
    } finally {
      c.destroy();
      adopted?.destroy();
    }
  });
});
