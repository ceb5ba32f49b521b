/**
 * Inter-packet timing on a real Gateway: with `probe_resistance.ipt` the
 * upstream -> client path of an authenticated CONNECT tunnel and of a
 * terminated TLS connection goes through the IPT writer (its Rng is drawn
 * from), every byte still arrives intact, half-close still completes the
 * exchange, and the added delay on 1 MiB stays bounded. Without ipt the
 * relay never draws a delay.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { seededRng } from "../../../src/core/random.js";
import { Gateway } from "../../../src/gateway/gateway.js";
import { Client, LogSink, configOf, connectDoc, withTimeout } from "../../gateway/fixtures.js";
import { type Running, exchange, fingerprint, selfSigned, startHttpMask, tlsExchange } from "./fixtures.js";
import { sleep } from "../../helpers/wait.js";
import { CountingRng, startBulkSource } from "../../helpers/bulk-source.js";

const MIB = 1024 * 1024;
/** Generous: the unit tests hold the precise overhead; here only "bounded, not stalled" is the point. */
const ADDED_DELAY_BOUND_MS = 4_000;

function payloadOf(n: number, seed: number): Buffer {
  const rng = seededRng(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rng.next() * 256);
  return b;
}

const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

interface Started {
  gateway: Gateway;
  port: number;
  rng: CountingRng;
}

async function startWithRng(doc: Record<string, unknown>): Promise<Started> {
  const rng = new CountingRng(11);
  const gateway = new Gateway(configOf(doc), { rng, logDestination: new LogSink() });
  const bound = await gateway.start();
  return { gateway, port: bound[0]!.port, rng };
}

/**
 * Tunnels to the source through the gateway: CONNECT, one byte to start the
 * source, then the client half-closes and reads everything after the 200
 * head until the gateway ends the connection. With `pauseMs` it reads
 * nothing for that long first, so the paced path meets backpressure.
 */
async function tunnel(gwPort: number, sourcePort: number, pauseMs = 0): Promise<{ body: Buffer; elapsedMs: number; head: string }> {
  const c = new Client(gwPort);
  await c.connected();
  c.write(`CONNECT 127.0.0.1:${sourcePort} HTTP/1.1\r\nHost: 127.0.0.1:${sourcePort}\r\nProxy-Authorization: Basic ${Buffer.from("alice:s3cret").toString("base64")}\r\n\r\n`);
  await c.until(() => c.text().includes("\r\n\r\n"), 5_000, "CONNECT answer");
  const head = c.text().slice(0, c.text().indexOf("\r\n\r\n"));
  const started = performance.now();
  c.socket.pause();
  c.socket.end("g");
  if (pauseMs > 0) await sleep(pauseMs);
  c.socket.resume();
  await c.waitClosed(20_000);
  const elapsedMs = performance.now() - started;
  return { body: c.received.subarray(c.received.indexOf("\r\n\r\n") + 4), elapsedMs, head };
}

describe("inter-packet timing in the gateway", () => {
  const payload = payloadOf(MIB, 5);
  let source: Running;
  let mask: Running;

  before(async () => {
    [source, mask] = await Promise.all([startBulkSource(payload), startHttpMask()]);
  });
  after(async () => {
    await source.close();
    await mask.close();
  });

  async function connectGateway(ipt: boolean): Promise<Started> {
    return startWithRng(
      await connectDoc({
        guard: { ban: { failures: 1000, backoff_after: 1000 } },
        listener: { probe_resistance: { mask: `127.0.0.1:${mask.port}`, delay: { floor: "10ms", ceiling: "30ms" }, ipt: { enabled: ipt } } },
      }),
    );
  }

  test("a tunnel delivers every byte intact, half-closes and completes; the added delay on 1 MiB is bounded", async (t) => {
    const [paced, plain] = await Promise.all([connectGateway(true), connectGateway(false)]);
    try {
      const base = await withTimeout(tunnel(plain.port, source.port), 25_000, "plain tunnel");
      const via = await withTimeout(tunnel(paced.port, source.port), 25_000, "paced tunnel");
      assert.match(via.head, /^HTTP\/1\.1 200/);
      assert.equal(via.body.length, payload.length);
      assert.equal(sha256(via.body), sha256(payload));
      assert.ok(paced.rng.draws > 0, "the upstream -> client path went through the IPT controller");
      t.diagnostic(`1 MiB through a tunnel: plain ${base.elapsedMs.toFixed(0)} ms, with IPT ${via.elapsedMs.toFixed(0)} ms`);
      assert.ok(via.elapsedMs < base.elapsedMs + ADDED_DELAY_BOUND_MS, `paced ${via.elapsedMs} ms vs plain ${base.elapsedMs} ms`);
      // Without ipt the relay is the plain one: same bytes, and no delay is ever drawn.
      assert.equal(sha256(base.body), sha256(payload));
      assert.equal(plain.rng.draws, 0);
      // A reader that stops for a while: the paced path holds back (bounded) and still delivers everything.
      const slow = await withTimeout(tunnel(paced.port, source.port, 300), 25_000, "paced tunnel, slow reader");
      assert.equal(sha256(slow.body), sha256(payload));
    } finally {
      await Promise.all([paced.gateway.stop(), plain.gateway.stop()]);
    }
  });

  test("masked connections are paced too: the mask host's answer goes through the IPT controller, byte for byte", async () => {
    const [paced, plain] = await Promise.all([connectGateway(true), connectGateway(false)]);
    try {
      const probe = Buffer.from("GET /index.html HTTP/1.1\r\nHost: www.example.test\r\n\r\n");
      const direct = await exchange(mask.port, probe);
      const before = paced.rng.draws;
      const via = await exchange(paced.port, probe);
      assert.deepEqual(via.bytes, direct.bytes);
      assert.ok(paced.rng.draws > before, "the mask host -> client path went through the IPT controller");
      const unpaced = await exchange(plain.port, probe);
      assert.deepEqual(unpaced.bytes, direct.bytes);
      assert.equal(plain.rng.draws, 0, "without ipt no delay is drawn");
    } finally {
      await Promise.all([paced.gateway.stop(), plain.gateway.stop()]);
    }
  });

  test("a terminated TLS connection on a tcp listener is paced and delivers every byte", async () => {
    const [maskCert, gwCert] = await Promise.all([selfSigned("www.example.test"), selfSigned("gw.example.test")]);
    const dir = await mkdtemp(join(tmpdir(), "portcullis-gwipt-"));
    const files = { cert: join(dir, "cert.pem"), key: join(dir, "key.pem") };
    await Promise.all([writeFile(files.cert, gwCert.cert), writeFile(files.key, gwCert.key)]);
    assert.notEqual(fingerprint(maskCert.cert), fingerprint(gwCert.cert));
    const doc = (ipt: boolean): Record<string, unknown> => ({
      log: { format: "json" },
      listener: [
        {
          name: "tls-in",
          kind: "tcp",
          bind: "127.0.0.1:0",
          upstream: `127.0.0.1:${source.port}`,
          tls: files,
          server_names: ["gw.example.test"],
          probe_resistance: { mask: `127.0.0.1:${mask.port}`, delay: { floor: "10ms", ceiling: "30ms" }, ipt: { enabled: ipt } },
        },
      ],
    });
    const [paced, plain] = await Promise.all([startWithRng(doc(true)), startWithRng(doc(false))]);
    try {
      for (const [gw, drawn] of [
        [paced, true],
        [plain, false],
      ] as const) {
        const r = await tlsExchange(gw.port, "gw.example.test", Buffer.from("g"), 20_000);
        assert.equal(r.error, undefined);
        assert.equal(r.fingerprint, fingerprint(gwCert.cert));
        assert.equal(r.bytes.length, payload.length);
        assert.equal(sha256(r.bytes), sha256(payload));
        assert.equal(gw.rng.draws > 0, drawn, drawn ? "paced" : "not paced");
      }
    } finally {
      await Promise.all([paced.gateway.stop(), plain.gateway.stop()]);
    }
  });
});
