import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { before, describe, test } from "node:test";
import { ManualClock } from "../../../src/core/clock.js";
import { peekClientHello, replayIntoTls } from "../../../src/features/probe-resistance/peek.js";
import { type SelfSigned, captureClientHello, selfSigned } from "./fixtures.js";
import { waitUntil } from "../../helpers/wait.js";
import { socketPair } from "../../helpers/socket-pair.js";

const tick = () => new Promise<void>((r) => setTimeout(r, 20));

describe("peek at the ClientHello", () => {
  let hello: Buffer;
  let cert: SelfSigned;
  before(async () => {
    [hello, cert] = await Promise.all([captureClientHello("gw.test"), selfSigned("gw.test")]);
  });

  test("a ClientHello trickled in small pieces: verdict, and every byte kept in order", async () => {
    const p = await socketPair();
    try {
      const result = peekClientHello(p.server, { timeoutMs: 5_000 });
      for (let i = 0; i < hello.length; i += 50) {
        p.client.write(hello.subarray(i, i + 50));
        await new Promise((r) => setImmediate(r));
      }
      const r = await result;
      assert.deepEqual(r.verdict, { kind: "tls-with-sni", serverName: "gw.test", recordBytes: hello.length });
      assert.deepEqual(r.bytes, hello);
      assert.equal(p.server.listenerCount("data"), 0, "no listener of ours is left on the socket");
      assert.equal(p.server.isPaused(), true);
    } finally {
      p.close();
    }
  });

  test("bytes that arrive with the ClientHello are kept too (nothing is lost)", async () => {
    const p = await socketPair();
    try {
      const extra = Buffer.from("0123456789");
      p.client.write(Buffer.concat([hello, extra]));
      const r = await peekClientHello(p.server, { timeoutMs: 5_000 });
      assert.equal(r.verdict.kind, "tls-with-sni");
      assert.deepEqual(r.bytes, Buffer.concat([hello, extra]));
    } finally {
      p.close();
    }
  });

  test("garbage gets a verdict from the first byte, without waiting", async () => {
    const p = await socketPair();
    try {
      p.client.write("GET / HTTP/1.1\r\n");
      const r = await peekClientHello(p.server, { timeoutMs: 5_000 });
      assert.equal(r.verdict.kind, "not-tls");
      assert.equal(r.bytes.toString(), "GET / HTTP/1.1\r\n");
    } finally {
      p.close();
    }
  });

  test("a stalled ClientHello ends at the time bound (injected clock) with the bytes read so far", async () => {
    const p = await socketPair();
    const clock = new ManualClock();
    try {
      let settled = false;
      const result = peekClientHello(p.server, { timeoutMs: 3_000, clock }).then((r) => ((settled = true), r));
      p.client.write(hello.subarray(0, 3));
      await waitUntil(() => p.server.bytesRead >= 3, { timeoutMs: 3_000, message: "the bytes to arrive" });
      clock.advance(2_999);
      await tick();
      assert.equal(settled, false);
      clock.advance(1);
      const r = await result;
      assert.deepEqual(r.verdict, { kind: "incomplete", reason: "timeout" });
      assert.deepEqual(r.bytes, hello.subarray(0, 3));
    } finally {
      p.close();
    }
  });

  test("EOF before a verdict: incomplete, the bytes kept, the socket marked ended", async () => {
    const p = await socketPair();
    try {
      p.client.end(hello.subarray(0, 40));
      const r = await peekClientHello(p.server, { timeoutMs: 5_000 });
      assert.deepEqual(r.verdict, { kind: "incomplete", reason: "eof" });
      assert.deepEqual(r.bytes, hello.subarray(0, 40));
      assert.equal(p.server.readableEnded, true);
    } finally {
      p.close();
    }
  });

  test("an endless TLS-looking stream is cut at the byte bound", async () => {
    const p = await socketPair();
    try {
      const claim = Buffer.from([0x01, 0x00, 0x0f, 0xff]); // a hello claiming 4 KiB
      const frames: Buffer[] = [];
      for (const b of Buffer.concat([claim, Buffer.alloc(4_100, 1)])) frames.push(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x01, b]));
      p.client.write(Buffer.concat(frames));
      const r = await peekClientHello(p.server, { maxBytes: 2_048, timeoutMs: 5_000 });
      assert.equal(r.verdict.kind, "malformed");
      assert.ok(r.bytes.length >= 2_048);
    } finally {
      p.close();
    }
  });

  test("replayIntoTls: the peeked bytes are replayed and the handshake completes", async () => {
    const srv = net.createServer({ allowHalfOpen: true }, async (socket) => {
      const r = await peekClientHello(socket, { timeoutMs: 5_000 });
      assert.equal(r.verdict.kind, "tls-with-sni");
      const t = replayIntoTls(socket, r.bytes, { secureContext: tls.createSecureContext({ cert: cert.cert, key: cert.key }) });
      t.on("error", () => t.destroy());
      t.on("data", (d: Buffer) => t.end(Buffer.concat([Buffer.from("echo:"), d])));
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
    try {
      const port = (srv.address() as net.AddressInfo).port;
      const got = await new Promise<string>((resolve, reject) => {
        const c = tls.connect({ port, host: "127.0.0.1", servername: "gw.test", rejectUnauthorized: false }, () => c.write("hi"));
        let s = "";
        c.on("data", (d: Buffer) => (s += d.toString()));
        c.on("end", () => resolve(s));
        c.on("error", reject);
        setTimeout(() => reject(new Error("timeout")), 4_000);
      });
      assert.equal(got, "echo:hi");
    } finally {
      srv.close();
    }
  });
});
