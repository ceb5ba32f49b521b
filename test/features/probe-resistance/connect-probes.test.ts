/**
 * Active probes against a connect listener with masking: for every probe
 * class the client receives byte-for-byte what the mask host itself answers
 * to the same input, and nothing from the gateway.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import { seededRng } from "../../../src/core/random.js";
import { type ConnectFront, type Running, closedPort, exchange, startConnectFront, startHttpMask } from "./fixtures.js";
import { waitUntil } from "../../helpers/wait.js";

const CREDS = `Basic ${Buffer.from("alice:s3cret").toString("base64")}`;

function randomBytes(n: number, seed: number): Buffer {
  const rng = seededRng(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rng.next() * 256);
  return b;
}

const PROBES: Array<[string, Buffer]> = [
  ["no credentials", Buffer.from("CONNECT internal.test:443 HTTP/1.1\r\nHost: internal.test:443\r\n\r\n")],
  [
    "wrong credentials",
    Buffer.from(`CONNECT internal.test:443 HTTP/1.1\r\nHost: internal.test:443\r\nProxy-Authorization: Basic ${Buffer.from("alice:wrong").toString("base64")}\r\n\r\n`),
  ],
  ["plain GET", Buffer.from("GET /index.html HTTP/1.1\r\nHost: www.example.test\r\nUser-Agent: probe/1.0\r\nAccept: */*\r\n\r\n")],
  ["random binary", randomBytes(2048, 7)],
  ["truncated CONNECT", Buffer.from("CONNECT internal.test:443 HTTP/1.1\r\nHost: intern")],
  ["truncated GET", Buffer.from("GET / HTTP/1.1\r\nHo")],
  ["huge header (GET)", Buffer.from(`GET / HTTP/1.1\r\nHost: www.example.test\r\nX-Filler: ${"a".repeat(20_000)}\r\n\r\n`)],
  ["huge header (CONNECT)", Buffer.from(`CONNECT internal.test:443 HTTP/1.1\r\nHost: internal.test:443\r\nX-Filler: ${"b".repeat(12_000)}\r\n\r\n`)],
];

describe("connect listener masking", () => {
  let mask: Running;
  let front: ConnectFront;
  let echo: net.Server;
  let echoPort = 0;

  before(async () => {
    mask = await startHttpMask();
    front = await startConnectFront({ mask: { host: "127.0.0.1", port: mask.port }, credentials: CREDS });
    echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", () => r()));
    echoPort = (echo.address() as net.AddressInfo).port;
  });
  after(async () => {
    await front.close();
    await mask.close();
    await new Promise<void>((r) => echo.close(() => r()));
  });

  for (const [name, input] of PROBES) {
    test(`${name}: the client sees exactly the mask host's answer`, async () => {
      const direct = await exchange(mask.port, input);
      const masked = front.masked.length;
      const via = await exchange(front.port, input);
      // The oracle is only meaningful if the mask host says something to this input.
      assert.ok(direct.bytes.length > 0, "the mask host answers this probe directly");
      assert.equal(via.bytes.toString("latin1"), direct.bytes.toString("latin1"));
      assert.deepEqual(via.bytes, direct.bytes);
      assert.equal(via.end, "closed");
      await waitUntil(() => front.masked.length > masked, { timeoutMs: 3_000, message: "the masked relay to finish" });
      assert.equal(front.tunnels, 0, "no probe was tunnelled");
    });
  }

  test("a probe that does not half-close still gets only the mask host's answer", async () => {
    const input = Buffer.from("GET / HTTP/1.1\r\nHost: www.example.test\r\n\r\n");
    const direct = await exchange(mask.port, input, { halfClose: false });
    const via = await exchange(front.port, input, { halfClose: false });
    assert.match(direct.bytes.toString(), /^HTTP\/1\.1 200 OK\r\n/);
    assert.deepEqual(via.bytes, direct.bytes);
  });

  test("an authenticated CONNECT is tunnelled, not masked", async () => {
    const input = Buffer.from(`CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\nHost: 127.0.0.1:${echoPort}\r\nProxy-Authorization: ${CREDS}\r\n\r\nping`);
    const via = await exchange(front.port, input);
    assert.equal(via.bytes.toString(), "HTTP/1.1 200 Connection established\r\n\r\nping");
    assert.equal(front.tunnels, 1);
  });

  test("unreachable mask host: zero bytes to the client, closed within the bounded delay", async () => {
    const port = await closedPort();
    const dead = await startConnectFront({ mask: { host: "127.0.0.1", port }, credentials: CREDS, delayFloorMs: 150, delayCeilingMs: 300 });
    try {
      for (const [, input] of PROBES.slice(0, 4)) {
        const via = await exchange(dead.port, input, { timeoutMs: 4_000 });
        assert.equal(via.bytes.length, 0, "no byte of any kind reaches the client");
        assert.notEqual(via.end, "timeout", "the connection is closed, not left hanging");
        // The close waits for the sampled delay (>= floor), and never much beyond the ceiling.
        assert.ok(via.elapsedMs >= 140, `closed after ${via.elapsedMs} ms, before the floor`);
        assert.ok(via.elapsedMs < 2_000, `closed after ${via.elapsedMs} ms`);
      }
      await waitUntil(() => dead.masked.length === 4, { timeoutMs: 3_000, message: "relay summaries" });
      assert.ok(dead.masked.every((s) => s.outcome === "unreachable" && s.bytesToClient === 0));
    } finally {
      await dead.close();
    }
  });
});
