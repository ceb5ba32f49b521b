/**
 * Probe resistance on a real Gateway's TLS tcp listener with server_names:
 * a ClientHello for a served name is terminated and relayed to the upstream;
 * another name, no name, or bytes that are not TLS are spliced raw to the
 * mask host, so the prober completes a handshake with the mask site and gets
 * its answer byte for byte; reject_handshake answers like nginx.
 */
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { mkdtemp } from "node:fs/promises";
import { unrecognizedNameAlert } from "../../../src/features/probe-resistance/reject-handshake.js";
import { startGateway, startOrigin, type Origin, type Running as Gw } from "../../gateway/fixtures.js";
import { type Running, type SelfSigned, captureClientHello, closedPort, exchange, fingerprint, selfSigned, startHttpsMask, tlsExchange } from "./fixtures.js";
import { memoryBox } from "../../helpers/memory-box.js";
import { waitUntil } from "../../helpers/wait.js";

const REQUEST = Buffer.from("GET /login HTTP/1.1\r\nHost: www.example.test\r\nUser-Agent: probe/1.0\r\nConnection: close\r\n\r\n");

async function certFiles(c: SelfSigned): Promise<{ cert: string; key: string }> {
  const dir = await mkdtemp(join(tmpdir(), "portcullis-gwprobe-"));
  await writeFile(join(dir, "cert.pem"), c.cert);
  await writeFile(join(dir, "key.pem"), c.key);
  return { cert: join(dir, "cert.pem"), key: join(dir, "key.pem") };
}

function tcpDoc(files: { cert: string; key: string }, upstreamPort: number, probe: Record<string, unknown>): Record<string, unknown> {
  return {
    log: { format: "json" },
    listener: [
      {
        name: "tls-in",
        kind: "tcp",
        bind: "127.0.0.1:0",
        upstream: `127.0.0.1:${upstreamPort}`,
        tls: { ...files },
        server_names: ["gw.example.test"],
        probe_resistance: { delay: { floor: "10ms", ceiling: "30ms" }, ...probe },
      },
    ],
  };
}

describe("TLS tcp listener with probe_resistance", () => {
  let maskCert: SelfSigned;
  let gwCert: SelfSigned;
  let mask: Running;
  let origin: Origin;
  let gw: Gw;
  let files: { cert: string; key: string };

  before(async () => {
    [maskCert, gwCert] = await Promise.all([selfSigned("www.example.test"), selfSigned("gw.example.test")]);
    mask = await startHttpsMask(maskCert);
    origin = await startOrigin();
    files = await certFiles(gwCert);
    // Several probes from one address in this suite: the ban is tested separately.
    gw = await startGateway({ ...tcpDoc(files, origin.port, { mask: `127.0.0.1:${mask.port}` }), guard: { ban: { failures: 1000, backoff_after: 1000 } } });
  });
  after(async () => {
    await gw.stop();
    await mask.close();
    await origin.close();
  });

  test("the served name is terminated by the gateway and relayed to the upstream", async () => {
    const r = await tlsExchange(gw.port, "gw.example.test", Buffer.from("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    assert.equal(r.fingerprint, fingerprint(gwCert.cert));
    assert.match(r.bytes.toString(), /hello from origin$/);
  });

  for (const [name, sni] of [
    ["wrong SNI", "other.example.test"],
    ["no SNI", undefined],
  ] as const) {
    test(`${name}: a real handshake with the mask host and its exact answer`, async () => {
      const direct = await tlsExchange(mask.port, sni, REQUEST);
      const via = await tlsExchange(gw.port, sni, REQUEST);
      assert.equal(direct.fingerprint, fingerprint(maskCert.cert));
      assert.equal(via.fingerprint, fingerprint(maskCert.cert), "the prober sees the mask host's certificate");
      assert.ok(direct.bytes.length > 0);
      assert.deepEqual(via.bytes, direct.bytes);
    });
  }

  test("a TLS record that is not a ClientHello gets the mask host's raw answer (its own alert)", async () => {
    const input = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x30]), Buffer.alloc(48, 0x07)]);
    const direct = await exchange(mask.port, input);
    const via = await exchange(gw.port, input);
    assert.ok(direct.bytes.length > 0);
    assert.deepEqual(via.bytes, direct.bytes);
  });

  test("reject_handshake: one unrecognized_name alert for another name, the served name still works", async () => {
    const rej = await startGateway(tcpDoc(files, origin.port, { mask: `127.0.0.1:${mask.port}`, unknown_sni_action: "reject_handshake" }));
    try {
      const hello = await captureClientHello("other.example.test");
      const via = await exchange(rej.port, hello, { halfClose: false });
      assert.deepEqual(via.bytes, unrecognizedNameAlert());
      const served = await tlsExchange(rej.port, "gw.example.test", Buffer.from("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
      assert.match(served.bytes.toString(), /hello from origin$/);
    } finally {
      await rej.stop();
    }
  });

  test("unreachable mask host: zero bytes, closed no earlier than the delay floor and within a bound", async () => {
    const port = await closedPort();
    const dead = await startGateway(tcpDoc(files, origin.port, { mask: `127.0.0.1:${port}`, delay: { floor: "150ms", ceiling: "300ms" } }));
    try {
      const via = await exchange(dead.port, Buffer.from("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), { timeoutMs: 4000 });
      assert.equal(via.bytes.length, 0);
      assert.notEqual(via.end, "timeout");
      assert.ok(via.elapsedMs >= 140 && via.elapsedMs < 2000, `closed after ${via.elapsedMs} ms`);
    } finally {
      await dead.stop();
    }
  });
});

describe("TLS probes and the guard", () => {
  let maskCert: SelfSigned;
  let gwCert: SelfSigned;
  let mask: Running;
  let origin: Origin;
  let files: { cert: string; key: string };

  before(async () => {
    [maskCert, gwCert] = await Promise.all([selfSigned("www.example.test"), selfSigned("gw.example.test")]);
    mask = await startHttpsMask(maskCert);
    origin = await startOrigin();
    files = await certFiles(gwCert);
  });
  after(async () => {
    await mask.close();
    await origin.close();
  });

  const guarded = (probe: Record<string, unknown>): Record<string, unknown> => ({
    ...tcpDoc(files, origin.port, { mask: `127.0.0.1:${mask.port}`, ...probe }),
    guard: { ban: { failures: 3, window: "1m", backoff_after: 100 } },
  });
  const GET = Buffer.from("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");

  test("masked probes (wrong SNI, no SNI, not TLS) feed the penalty box until the prober is banned; served clients are not counted", async () => {
    const gw = await startGateway(guarded({}));
    try {
      const key = (a: string): string => gw.gateway.keyOf(a);
      const served = await captureClientHello("gw.example.test");
      // Before the ban the served name from the prober's address is answered (a ServerHello).
      assert.ok((await exchange(gw.port, served, { localAddress: "127.0.0.9", halfClose: false, timeoutMs: 500 })).bytes.length > 0);
      // A client with a served SNI, more times than the ban threshold: never counted.
      for (let i = 0; i < 4; i++) {
        const r = await tlsExchange(gw.port, "gw.example.test", GET);
        assert.match(r.bytes.toString(), /hello from origin$/, `served connection ${i + 1}`);
      }
      assert.equal(memoryBox(gw.gateway).status(key("127.0.0.1")).streak, 0);

      const probes = [await captureClientHello("other.example.test"), await captureClientHello(undefined), Buffer.from("GET / HTTP/1.1\r\nHost: a\r\n\r\n")];
      for (const [i, probe] of probes.slice(0, 2).entries()) {
        const via = await exchange(gw.port, probe, { localAddress: "127.0.0.9" });
        assert.ok(via.bytes.length > 0, `probe ${i + 1} is masked (the mask host answers)`);
      }
      await waitUntil(() => memoryBox(gw.gateway).status(key("127.0.0.9")).streak === 2, { timeoutMs: 3_000, message: "two failures recorded" });
      assert.equal(memoryBox(gw.gateway).status(key("127.0.0.9")).bans, 0);
      await exchange(gw.port, probes[2]!, { localAddress: "127.0.0.9" });
      await waitUntil(() => gw.log.events("ban").length === 1, { timeoutMs: 3_000, message: "the ban is announced" });
      assert.equal(memoryBox(gw.gateway).status(key("127.0.0.9")).bans, 1);
      // Banned: the served name is refused, which on a masking listener means the mask host answers it (its certificate),
      // exactly as every probe before the ban; other addresses are unaffected.
      for (let i = 0; i < 2; i++) {
        const banned = await tlsExchange(gw.port, "gw.example.test", GET, 5_000, "127.0.0.9");
        assert.equal(banned.error, undefined);
        assert.equal(banned.fingerprint, fingerprint(maskCert.cert), "the mask host's certificate, not the gateway's");
        assert.doesNotMatch(banned.bytes.toString(), /hello from origin/);
      }
      for (const [i, probe] of probes.slice(0, 2).entries()) {
        const via = await exchange(gw.port, probe, { localAddress: "127.0.0.9" });
        assert.ok(via.bytes.length > 0, `banned: probe ${i + 1} is still masked`);
      }
      const other = await tlsExchange(gw.port, "gw.example.test", GET);
      assert.match(other.bytes.toString(), /hello from origin$/);
      assert.equal(memoryBox(gw.gateway).status(key("127.0.0.1")).bans, 0);
    } finally {
      await gw.stop();
    }
  });

  test("a ban that comes while a probe's hello is being read leaves it open: it gets the mask host's handshake, even for the served name", async () => {
    const gw = await startGateway(guarded({}));
    try {
      // Connected, nothing sent yet: the gateway is still reading for a ClientHello when the ban comes.
      const raw = net.connect({ port: gw.port, host: "127.0.0.1", localAddress: "127.0.0.12" });
      raw.on("error", () => {});
      await new Promise<void>((r, j) => {
        raw.once("connect", () => r());
        raw.once("error", j);
      });
      await waitUntil(() => gw.log.events("conn_open").length >= 1, { timeoutMs: 3_000, message: "the gateway has the connection" });
      await gw.gateway.ban("127.0.0.12");
      await waitUntil(() => gw.log.events("ban").length === 1, { timeoutMs: 3_000, message: "the ban is announced" });
      // Before, the ban cut it here: no bytes and a reset, which a plain forward to the site never does.
      const r = await new Promise<{ fingerprint?: string; error?: string }>((resolve) => {
        const t = tls.connect({ socket: raw, servername: "gw.example.test", rejectUnauthorized: false, minVersion: "TLSv1.2" });
        const timer = setTimeout(() => resolve({ error: "timeout" }), 5_000);
        t.on("secureConnect", () => {
          clearTimeout(timer);
          resolve({ fingerprint: t.getPeerCertificate().fingerprint256 });
          t.destroy();
        });
        t.on("error", (e: Error) => {
          clearTimeout(timer);
          resolve({ error: e.message });
        });
      });
      assert.equal(r.error, undefined);
      assert.equal(r.fingerprint, fingerprint(maskCert.cert), "the mask host's certificate: the banned address is served nothing");
    } finally {
      await gw.stop();
    }
  });

  test("reject_handshake answers count too", async () => {
    const gw = await startGateway(guarded({ unknown_sni_action: "reject_handshake" }));
    try {
      const hello = await captureClientHello("other.example.test");
      for (let i = 0; i < 3; i++) {
        const via = await exchange(gw.port, hello, { localAddress: "127.0.0.10", halfClose: false });
        assert.deepEqual(via.bytes, unrecognizedNameAlert(), `attempt ${i + 1} gets the alert`);
      }
      await waitUntil(() => gw.log.events("ban").length === 1, { timeoutMs: 3_000, message: "the ban is announced" });
      assert.equal(memoryBox(gw.gateway).status(gw.gateway.keyOf("127.0.0.10")).bans, 1);
      // The ban changes nothing the prober sees: the same alert, again and again.
      for (let i = 0; i < 3; i++) {
        const banned = await exchange(gw.port, hello, { localAddress: "127.0.0.10", halfClose: false, timeoutMs: 2_000 });
        assert.deepEqual(banned.bytes, unrecognizedNameAlert(), `banned attempt ${i + 1} gets the alert`);
      }
    } finally {
      await gw.stop();
    }
  });
});
