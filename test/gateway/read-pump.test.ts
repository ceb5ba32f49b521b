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
import { withTimeout } from "./fixtures.js";

async function serve(onConnection: (s: net.Socket) => void): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer({ allowHalfOpen: true }, onConnection);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as net.AddressInfo).port };
}

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A pool that counts the buffers sockets take from it and the ones it had to make. */
class CountingPool extends ReadBufferPool {
  taken = 0;
  made = 0;
  override take(): Buffer {
    this.taken++;
    if (this.idle === 0) this.made++;
    return super.take();
  }
}

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
      // Push mode copies out of the shared buffer; it never takes one of its own.
      assert.equal(pool.idle, 0);
      s.destroy();
      await withTimeout(new Promise((r) => s.once("close", r)), 5000, "close");
      assert.equal(pool.idle, 0);
    } finally {
      server.close();
    }
  });

  test("direct mode: a bulk stream takes a 64 KiB buffer, a short read gives it back, and so does closing", async () => {
    let peer: net.Socket | undefined;
    const { server, port } = await serve((s) => (peer = s));
    try {
      const pool = new CountingPool();
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
      // The bulk stream read into a buffer of its own.
      assert.ok(pool.taken >= 1, "a bulk read takes a 64 KiB buffer");
      peer!.write("short");
      for (let i = 0; i < 300 && received < 4 * 1024 * 1024 + 5; i++) await tick(10);
      assert.equal(received, 4 * 1024 * 1024 + 5);
      assert.equal(pool.idle, 1, "a short read hands the 64 KiB buffer back");
      // Bulk again: the socket takes the pooled buffer rather than a new one, and gives it back at close.
      const takenBefore = pool.taken;
      peer!.write(Buffer.alloc(1024 * 1024, 2));
      for (let i = 0; i < 300 && received < 5 * 1024 * 1024 + 5; i++) await tick(10);
      assert.equal(received, 5 * 1024 * 1024 + 5);
      assert.ok(pool.taken > takenBefore);
      s.destroy();
      await withTimeout(new Promise((r) => s.once("close", r)), 5000, "close");
      assert.equal(pool.idle, 1, "a closed socket gives its buffer back");
      assert.equal(pool.made, 1, "one socket never needs more than one buffer of its own");
    } finally {
      peer?.destroy();
      server.close();
    }
  });

  test("direct mode to a writer that keeps chunks a while: short and bulk reads both arrive unchanged", { timeout: 30_000 }, async () => {
    // The writer reads each chunk only when it gets to it, as a socket's pending write does: a short read
    // left in the shared buffer, or a bulk buffer read into again too early, would show up in the digest.
    const pieces: Buffer[] = [];
    // Runs of short pieces sent back to back (consecutive short reads), then a bulk piece.
    for (let i = 0; i < 160; i++) pieces.push(randomBytes(i % 4 === 3 ? 100 * 1024 + i : 2048 + i));
    const all = Buffer.concat(pieces);
    const { server, port } = await serve((s) => {
      void (async () => {
        for (const [i, p] of pieces.entries()) {
          s.write(p);
          if (i % 4 === 3) await tick(2);
          else await new Promise((r) => setImmediate(r));
        }
        s.end();
      })();
    });
    try {
      const pool = new ReadBufferPool();
      const s = connectPumped({ host: "127.0.0.1", port }, pool);
      const h = createHash("sha256");
      let length = 0;
      const sink = new Writable({
        highWaterMark: 4 * 1024 * 1024,
        write(chunk: Buffer, _enc, cb) {
          setTimeout(() => {
            h.update(chunk);
            length += chunk.length;
            cb();
          }, 1);
        },
      });
      const finished = new Promise((r) => sink.once("finish", r));
      pumpOf(s)!.direct(sink);
      await withTimeout(finished, 25_000, "the writer's finish");
      assert.equal(length, all.length);
      assert.equal(h.digest("hex"), createHash("sha256").update(all).digest("hex"));
      s.destroy();
    } finally {
      server.close();
    }
  });

  test("an adopted socket keeps the server's connection count: close() waits for it", async () => {
    const pool = new ReadBufferPool();
    let adopted: net.Socket | undefined;
    let received = "";
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (raw) => {
      adopted = adopt(raw, pool);
      assert.ok(adopted, "this Node lets the gateway adopt an accepted socket");
      // No second socket per connection: the accepted one reads through the pump.
      assert.equal(adopted, raw);
      assert.equal(pumpOf(adopted)?.mode, "push");
      adopted.on("data", (d: Buffer) => (received += d.toString()));
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
      assert.equal(received, "hello");
      // The read landed in the pool's shared buffer (and was copied out), not in a buffer Node allocated.
      assert.equal(pool.shared.subarray(0, 5).toString(), "hello");
      adopted!.destroy();
      for (let i = 0; i < 50 && !closed; i++) await tick(10);
      assert.equal(closed, true, "closing the adopted socket lets the server close");
    } finally {
      c.destroy();
      adopted?.destroy();
    }
  });
});
