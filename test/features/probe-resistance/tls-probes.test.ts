/**
 * Active probes against a TLS listener with masking: a ClientHello for a
 * name the listener does not serve, without a name, or anything that is not
 * a well-formed ClientHello is spliced raw to the mask host, so the prober
 * completes a real handshake with the real site and sees its certificate.
 */
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { after, before, describe, test } from "node:test";
import { unrecognizedNameAlert } from "../../../src/features/probe-resistance/reject-handshake.js";
import { type Running, type SelfSigned, type TlsFront, captureClientHello, closedPort, exchange, fingerprint, selfSigned, startHttpsMask, startNginxRejecting, startTlsFront, tlsExchange } from "./fixtures.js";
import { waitUntil } from "../../helpers/wait.js";

const REQUEST = Buffer.from("GET /login HTTP/1.1\r\nHost: www.example.test\r\nUser-Agent: probe/1.0\r\nConnection: close\r\n\r\n");

/** Raw inputs that are not a well-formed ClientHello. */
const GARBAGE: Array<[string, Buffer]> = [
  ["TLS record with a garbage handshake", Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x30]), Buffer.alloc(48, 0x07)])],
  ["TLS record header with an impossible length", Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00])],
  ["ClientHello that lies about its length", Buffer.from([0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x10, 0x03, 0x03, 0x00, 0x00])],
  ["plain HTTP to the TLS port", Buffer.from("GET / HTTP/1.1\r\nHost: www.example.test\r\n\r\n")],
  ["SSLv2-style binary", Buffer.from([0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10])],
];

describe("TLS listener masking", () => {
  let maskCert: SelfSigned;
  let gwCert: SelfSigned;
  let mask: Running;
  let front: TlsFront;
  let rejecting: TlsFront;

  before(async () => {
    [maskCert, gwCert] = await Promise.all([selfSigned("mask.test"), selfSigned("gw.test")]);
    mask = await startHttpsMask(maskCert);
    const common = {
      names: ["gw.test"],
      secureContext: tls.createSecureContext({ cert: gwCert.cert, key: gwCert.key }),
      mask: { host: "127.0.0.1", port: mask.port },
      delayFloorMs: 10,
      delayCeilingMs: 40,
    };
    front = await startTlsFront(common);
    rejecting = await startTlsFront({ ...common, unknownSniAction: "reject_handshake" });
  });
  after(async () => {
    await front.close();
    await rejecting.close();
    await mask.close();
  });

  test("the configured name is terminated by the gateway with its own certificate", async () => {
    const via = await tlsExchange(front.port, "gw.test", REQUEST);
    assert.equal(via.error, undefined);
    assert.equal(via.fingerprint, fingerprint(gwCert.cert));
    assert.match(via.bytes.toString(), /\r\n\r\ngateway$/);
  });

  for (const [name, servername] of [
    ["wrong SNI", "other.example.test"],
    ["no SNI", undefined],
  ] as const) {
    test(`${name}: real handshake with the mask host, its certificate, its exact answer`, async () => {
      const direct = await tlsExchange(mask.port, servername, REQUEST);
      const before = front.outcomes.length;
      const via = await tlsExchange(front.port, servername, REQUEST);
      assert.equal(direct.error, undefined);
      assert.equal(via.error, undefined);
      assert.equal(direct.fingerprint, fingerprint(maskCert.cert));
      assert.equal(via.fingerprint, fingerprint(maskCert.cert), "the prober sees the mask host's certificate");
      assert.match(direct.bytes.toString(), /^HTTP\/1\.1 200 OK\r\n/);
      assert.deepEqual(via.bytes, direct.bytes);
      await waitUntil(() => front.outcomes.length > before, { timeoutMs: 3_000, message: "the masked connection to finish" });
      const outcome = front.outcomes.at(-1)!;
      assert.equal(outcome.kind, "masked");
      assert.equal(outcome.kind === "masked" && outcome.verdict.kind, servername === undefined ? "tls-no-sni" : "tls-with-sni");
    });
  }

  for (const [name, input] of GARBAGE) {
    test(`${name}: the raw bytes back are exactly the mask host's`, async () => {
      const direct = await exchange(mask.port, input);
      const via = await exchange(front.port, input);
      assert.equal(direct.end, "closed");
      assert.equal(via.end, "closed");
      assert.equal(via.bytes.toString("hex"), direct.bytes.toString("hex"));
    });
  }

  test("TLS garbage draws the mask host's own alert, relayed unchanged", async () => {
    const direct = await exchange(mask.port, GARBAGE[0]![1]);
    // The oracle above is not vacuous for this input: the real site answers an alert.
    assert.equal(direct.bytes[0], 0x15);
    const via = await exchange(front.port, GARBAGE[0]![1]);
    assert.deepEqual(via.bytes, direct.bytes);
  });

  test("a ClientHello split into 1-byte TCP writes still reaches the mask host whole", async () => {
    const hello = await captureClientHello("other.example.test");
    const via = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const sock = new net.Socket();
      const timer = setTimeout(() => reject(new Error("timeout")), 4_000);
      sock.connect(front.port, "127.0.0.1", async () => {
        for (let i = 0; i < hello.length; i++) {
          sock.write(hello.subarray(i, i + 1));
          if (i % 64 === 0) await new Promise((r) => setImmediate(r));
        }
      });
      sock.on("data", (c: Buffer) => {
        chunks.push(c);
        // The mask host's ServerHello flight proves it parsed the reassembled ClientHello.
        if (Buffer.concat(chunks).length > 100) {
          clearTimeout(timer);
          sock.destroy();
          resolve(Buffer.concat(chunks));
        }
      });
      sock.on("error", reject);
    });
    assert.equal(via[0], 0x16, "a handshake record (ServerHello) from the mask host");
    assert.equal(via[5], 0x02, "ServerHello");
  });

  test("reject_handshake: a wrong SNI gets exactly one fatal unrecognized_name alert", async () => {
    const hello = await captureClientHello("other.example.test");
    const via = await exchange(rejecting.port, hello);
    assert.deepEqual(via.bytes, unrecognizedNameAlert());
    assert.deepEqual([...via.bytes], [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112]);
    // And a real TLS client reports it as such.
    const client = await tlsExchange(rejecting.port, "other.example.test", REQUEST);
    assert.match(client.error ?? "", /unrecognized name/i);
    assert.equal(client.fingerprint, undefined);
  });

  test("reject_handshake answers byte-for-byte what nginx's ssl_reject_handshake answers", async () => {
    const nginx = await startNginxRejecting("gw.test", gwCert);
    try {
      for (const [servername, opts] of [
        ["other.example.test", {}],
        ["other.example.test", { maxVersion: "TLSv1.2" }],
        [undefined, {}],
      ] as const) {
        const hello = await captureClientHello(servername, opts);
        const reference = await exchange(nginx.port, hello);
        const ours = await exchange(rejecting.port, hello);
        assert.equal(reference.bytes.toString("hex"), "15030300020270", "nginx's own answer");
        assert.deepEqual(ours.bytes, reference.bytes);
        assert.equal(ours.end, "closed");
      }
    } finally {
      await nginx.stop();
    }
  });

  test("reject_handshake still terminates the configured name", async () => {
    const via = await tlsExchange(rejecting.port, "GW.test", REQUEST);
    assert.equal(via.fingerprint, fingerprint(gwCert.cert));
  });

  test("unreachable mask host: a wrong SNI gets zero bytes and a close within the bounded delay", async () => {
    const port = await closedPort();
    const dead = await startTlsFront({
      names: ["gw.test"],
      secureContext: tls.createSecureContext({ cert: gwCert.cert, key: gwCert.key }),
      mask: { host: "127.0.0.1", port },
      delayFloorMs: 150,
      delayCeilingMs: 300,
    });
    try {
      const hello = await captureClientHello("other.example.test");
      for (const input of [hello, GARBAGE[0]![1]]) {
        const via = await exchange(dead.port, input, { timeoutMs: 4_000 });
        assert.equal(via.bytes.length, 0);
        assert.equal(via.end, "closed");
        assert.ok(via.elapsedMs >= 140 && via.elapsedMs < 2_000, `closed after ${via.elapsedMs} ms`);
      }
    } finally {
      await dead.close();
    }
  });
});
