/**
 * Timing a prober sees, gateway vs a plain port-forward to the same real
 * nginx (both paths carry one extra hop), with the gateway's default
 * probe_resistance settings:
 *
 * - a silent probe, and half a ClientHello, are closed when nginx closes
 *   them (its client_header_timeout, 1 s here), not after the gateway's own
 *   ClientHello wait (tls.handshake_timeout, 3 s here) on top of it;
 * - probes nginx answers and closes at once (garbage, an HTTP GET in clear)
 *   are closed (FIN) as soon as through the forwarder: no added delay.
 *
 * Durations on real sockets, so this file runs alone. Tolerances: silent
 * probes, medians within 200 ms (the classify window is 20 ms; the rest is
 * scheduling on a loaded 2-core machine); answered probes, p50 of the close
 * within 50 ms (the old default delay of 100 ms - 1 s put it 300+ ms late).
 */
import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startGateway, type Running as Gw } from "../../gateway/fixtures.js";
import { type SelfSigned, captureClientHello, selfSigned } from "./fixtures.js";
import { type Observation, type Probe, type Stoppable, median, observe, startForwarder, startNginxMask } from "./prober.js";

async function certFiles(c: SelfSigned): Promise<{ cert: string; key: string }> {
  const dir = await mkdtemp(join(tmpdir(), "portcullis-gwtiming-"));
  await writeFile(join(dir, "cert.pem"), c.cert);
  await writeFile(join(dir, "key.pem"), c.key);
  return { cert: join(dir, "cert.pem"), key: join(dir, "key.pem") };
}

describe("masked probes close when the mask site closes them", () => {
  let nginx: Stoppable;
  let forwarder: Stoppable;
  let gw: Gw;
  let hello: Buffer;

  before(async () => {
    const [maskCert, gwCert] = await Promise.all([selfSigned("www.example.test"), selfSigned("gw.example.test")]);
    nginx = await startNginxMask(maskCert, { headerTimeout: "1s" });
    forwarder = await startForwarder(nginx.port);
    const files = await certFiles(gwCert);
    hello = await captureClientHello("other.example.test");
    gw = await startGateway({
      log: { format: "json" },
      listener: [
        {
          name: "tls-in",
          kind: "tcp",
          bind: "127.0.0.1:0",
          upstream: "127.0.0.1:9",
          tls: { ...files, handshake_timeout: "3s" },
          server_names: ["gw.example.test"],
          // Defaults otherwise: no delay, the default classify window and relay caps.
          probe_resistance: { mask: `127.0.0.1:${nginx.port}` },
        },
      ],
      // Many probes from one address here: the guard's ban is not what this file is about.
      guard: { ban: { failures: 100_000, backoff_after: 100_000 } },
    });
  });
  after(async () => {
    await gw.stop();
    await forwarder.stop();
    await nginx.stop();
  });

  /** `n` interleaved samples of one probe through both paths. */
  async function paired(p: Probe, n: number, timeoutMs: number): Promise<{ gw: Observation[]; fwd: Observation[] }> {
    const out = { gw: [] as Observation[], fwd: [] as Observation[] };
    for (let i = 0; i < n; i++) {
      // Both paths at once, so load on the machine hits them alike.
      const [a, b] = await Promise.all([observe(gw.port, p, timeoutMs), observe(forwarder.port, p, timeoutMs)]);
      out.gw.push(a);
      out.fwd.push(b);
    }
    return out;
  }

  for (const [name, send] of [
    ["nothing, then silence", [] as Buffer[]],
    ["half a ClientHello, then silence", ["half"]],
  ] as const) {
    test(`${name}: closed within 200 ms of nginx's own close`, async () => {
      const probe: Probe = { name, send: send.map(() => hello.subarray(0, Math.floor(hello.length / 2))) };
      const r = await paired(probe, 3, 8_000);
      const g = median(r.gw.map((o) => o.closeMs));
      const f = median(r.fwd.map((o) => o.closeMs));
      assert.ok(r.fwd.every((o) => o.closeKind !== "timeout" && o.closeMs > 800), `nginx closes after its 1 s timeout: ${r.fwd.map((o) => o.closeMs.toFixed(0))}`);
      assert.ok(r.gw.every((o) => o.closeKind === r.fwd[0]!.closeKind), `close kinds ${r.gw.map((o) => o.closeKind)} vs ${r.fwd[0]!.closeKind}`);
      assert.ok(Math.abs(g - f) < 200, `gateway closes at ${g.toFixed(0)} ms, nginx through the forwarder at ${f.toFixed(0)} ms`);
      assert.deepEqual(r.gw.map((o) => o.bytes.length), r.fwd.map((o) => o.bytes.length));
    });
  }

  for (const [name, payload] of [
    ["garbage", Buffer.from("\x00\x01\x02 not a web request at all \r\n\r\n")],
    ["an HTTP GET in clear", Buffer.from("GET / HTTP/1.1\r\nHost: www.example.test\r\n\r\n")],
  ] as const) {
    test(`${name}: with the default configuration the close (FIN) comes within 50 ms of nginx's at p50`, async () => {
      const r = await paired({ name, send: [payload] }, 15, 5_000);
      const g = median(r.gw.map((o) => o.closeMs));
      const f = median(r.fwd.map((o) => o.closeMs));
      assert.ok(r.gw.every((o) => o.closeKind === "fin") && r.fwd.every((o) => o.closeKind === "fin"), "FIN on both paths");
      assert.ok(Math.abs(g - f) < 50, `p50 close: gateway ${g.toFixed(1)} ms, nginx through the forwarder ${f.toFixed(1)} ms`);
      const fb = median(r.gw.map((o) => o.firstByteMs ?? Number.NaN));
      const ff = median(r.fwd.map((o) => o.firstByteMs ?? Number.NaN));
      assert.ok(Math.abs(fb - ff) < 50, `p50 first byte: gateway ${fb.toFixed(1)} ms, forwarder ${ff.toFixed(1)} ms`);
    });
  }
});
