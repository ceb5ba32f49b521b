import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Client, connectDoc, probe, type Running, startGateway } from "./fixtures.js";
import { sleep } from "../helpers/wait.js";

/** Each case must be closed within this time (request_timeout is 1 s; the rest is slack for a loaded machine). */
const BOUND_MS = 4000;

describe("malformed input on the connect listener", () => {
  let gw: Running;
  before(async () => {
    gw = await startGateway(await connectDoc({ listener: { request_timeout: "1s", max_request_bytes: "16KiB" } }));
  });
  after(async () => {
    await gw.stop();
  });

  const cases: Array<[string, (c: Client) => Promise<void> | void]> = [
    ["truncated request line, then silence", (c) => c.write("CONNECT 127.0.0.1:80")],
    ["request line without a version", (c) => c.write("CONNECT 127.0.0.1:80\r\n\r\n")],
    ["truncated request line, then end of stream", (c) => void c.socket.end("CONNECT 127.0.0.1:8")],
    ["HTTP/1.1 without Host", (c) => c.write("CONNECT 127.0.0.1:80 HTTP/1.1\r\n\r\n")],
    ["bad authority", (c) => c.write("CONNECT http://x/ HTTP/1.1\r\nHost: x\r\n\r\n")],
    ["64 KiB header line", (c) => c.write(`CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: x\r\nX-Long: ${"a".repeat(64 * 1024)}\r\n\r\n`)],
    ["non-HTTP bytes", (c) => c.write(randomBytes(2048))],
    ["a TLS ClientHello", (c) => c.write(Buffer.from("160301020001000200030300", "hex"))],
    ["a plain GET", (c) => c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")],
    ["header without a colon", (c) => c.write("CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost x\r\n\r\n")],
    ["NUL inside the head", (c) => c.write("CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: x\0y\r\n\r\n")],
    [
      "slowloris: one byte per second",
      async (c) => {
        const head = "CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n";
        for (let i = 0; i < head.length && !c.closed; i++) {
          c.write(head[i]!);
          await sleep(1000);
        }
      },
    ],
  ];

  for (const [name, send] of cases) {
    test(`${name}: closed in bounded time, nothing leaked on the wire`, async () => {
      const c = new Client(gw.port, "127.0.10.1");
      await c.connected();
      const started = Date.now();
      void send(c);
      await c.waitClosed(BOUND_MS);
      assert.ok(Date.now() - started < BOUND_MS);
      const text = c.text();
      assert.ok(!/Error|\n\s+at |node:|portcullis/i.test(text), `nothing internal on the wire: ${JSON.stringify(text.slice(0, 200))}`);
      assert.equal(text, "", "malformed input gets a silent close");
    });
  }

  test("the gateway still serves after the corpus", async () => {
    const p = await probe(gw.port, "127.0.10.2");
    assert.equal(p.served, true);
    p.client.destroy();
  });
});
