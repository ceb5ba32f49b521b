/**
 * Metrics read on scrape from the gateway's own snapshots, after real
 * traffic through a real Gateway: a udp listener flooded past its packet
 * cap, a bandwidth-capped CONNECT tunnel, and a signed PostgreSQL policy
 * meeting a tampered row. Each exposition passes `promtool check metrics`
 * and carries no address or identity.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import dgram from "node:dgram";
import { once } from "node:events";
import net from "node:net";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { systemClock } from "../../src/core/clock.js";
import { GatewayMetrics } from "../../src/metrics/gateway-metrics.js";
import { generateSigningKey, publicKeyPem } from "../../src/features/permissions/signing-keys.js";
import { startGateway, startOrigin, withTimeout, type Origin, type Running } from "../gateway/fixtures.js";
import { bandwidthDoc, openTunnel } from "../features/bandwidth/gateway-harness.js";
import { makeTestPki } from "../helpers/certs.js";
import { grant, pgFixture, type PgFixture } from "../features/permissions/pg-fixture.js";
import { closedPort } from "../features/probe-resistance/fixtures.js";
import { sample } from "./fixtures.js";
import { waitUntil, sleep } from "../helpers/wait.js";

function promtoolCheck(text: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = execFile("promtool", ["check", "metrics"], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` });
    });
    p.stdin!.end(text);
  });
}

async function assertWellFormed(text: string, secrets: string[]): Promise<void> {
  const r = await promtoolCheck(text);
  assert.equal(r.code, 0, r.out);
  for (const s of secrets) assert.ok(!text.includes(s), `exposition mentions ${s}`);
}

/** Scrapes until `pred` holds (bounded). */
async function scrapeUntil(m: GatewayMetrics, pred: (text: string) => boolean, what: string, ms = 5000): Promise<string> {
  return withTimeout(
    (async () => {
      for (;;) {
        const text = await m.expose();
        if (pred(text)) return text;
        await sleep(20);
      }
    })(),
    ms,
    what,
  );
}

async function udpSocket(local: string): Promise<dgram.Socket> {
  const s = dgram.createSocket("udp4");
  s.bind(0, local);
  await once(s, "listening");
  return s;
}

describe("snapshot metrics", () => {
  test("a udp listener flooded past its packet cap: relayed, dropped by reason and active flows in the exposition", async () => {
    let received = 0;
    const upstream = await udpSocket("127.0.0.1");
    upstream.on("message", () => received++);
    const gw = await startGateway({
      log: { format: "json", level: "warn" },
      listener: [{ name: "dns", kind: "udp", bind: "127.0.0.1:0", upstream: `127.0.0.1:${upstream.address().port}`, packets_per_second: 50, max_flows_per_ip: 1 }],
    });
    const metrics = new GatewayMetrics(gw.gateway, { processMetrics: false });
    const flood = await udpSocket("127.0.0.2");
    const second = await udpSocket("127.0.0.2");
    try {
      let text = await metrics.expose();
      // Present at 0 before any traffic, so rate() works from the first scrape.
      assert.match(text, /^portcullis_udp_dropped_total\{listener="dns",direction="in",reason="rate_cap"\} 0$/m);
      assert.equal(sample(text, "portcullis_udp_flows_active", { listener: "dns" }), 0);

      const sent = 300;
      for (let i = 0; i < sent; i++) {
        flood.send(Buffer.from(`p${i}`), gw.port, "127.0.0.1");
        // In batches, so the kernel's receive buffer does not lose datagrams before the relay sees them.
        if (i % 40 === 39) await sleep(5);
      }
      // A second flow from the same address is over max_flows_per_ip.
      second.send("extra", gw.port, "127.0.0.1");
      const c = gw.gateway.udpCounters("dns")!;
      text = await scrapeUntil(metrics, (t) => sample(t, "portcullis_udp_dropped_total", { listener: "dns", direction: "in", reason: "flow_cap" }) === 1, "the flow-cap drop");
      await waitUntil(() => c.packetsUp === received, { timeoutMs: 3000, intervalMs: 10, message: "the upstream to receive what was relayed" });
      text = await metrics.expose();

      const relayed = sample(text, "portcullis_udp_packets_total", { listener: "dns", direction: "in" });
      const dropped = sample(text, "portcullis_udp_dropped_total", { listener: "dns", direction: "in", reason: "rate_cap" });
      assert.equal(relayed, received);
      assert.ok(relayed >= 50 && relayed < sent, `relayed ${relayed}`);
      // Every datagram the relay saw was relayed or dropped (the kernel may lose a few before it).
      assert.ok(dropped > 0 && relayed + dropped <= sent && relayed + dropped >= sent * 0.9, `relayed ${relayed}, dropped ${dropped}`);
      assert.equal(sample(text, "portcullis_udp_dropped_bytes_total", { listener: "dns", direction: "in" }), c.bytesDroppedUp);
      assert.equal(sample(text, "portcullis_udp_bytes_total", { listener: "dns", direction: "in" }), c.bytesUp);
      assert.equal(sample(text, "portcullis_udp_dropped_total", { listener: "dns", direction: "out", reason: "rate_cap" }), 0);
      assert.equal(sample(text, "portcullis_udp_flows_active", { listener: "dns" }), 1);
      await assertWellFormed(text, ["127.0.0."]);
    } finally {
      metrics.close();
      flood.close();
      second.close();
      await gw.stop();
      upstream.close();
    }
  });

  test("a bandwidth-capped CONNECT tunnel shows a shaped connection, a tracked key and delayed bytes", async () => {
    // A sink that reads everything, sends nothing and closes when the client does.
    const sink = net.createServer((c) => {
      c.on("error", () => {});
      c.resume();
    });
    sink.listen(0, "127.0.0.1");
    await once(sink, "listening");
    const sinkPort = (sink.address() as net.AddressInfo).port;
    const gw = await startGateway(await bandwidthDoc({ per_ip: { bytes_per_second: "64KiB", burst: "16KiB" } }));
    const metrics = new GatewayMetrics(gw.gateway, { processMetrics: false });
    try {
      let text = await metrics.expose();
      assert.equal(sample(text, "portcullis_shaped_connections"), 0);
      assert.match(text, /^portcullis_delayed_bytes_total\{direction="in"\} 0$/m);

      const s = await openTunnel(gw.port, sinkPort, "alice", "127.0.0.3");
      try {
        // Three times the burst: the rest waits for the bucket (about half a second at 64 KiB/s).
        s.write(Buffer.alloc(48 * 1024));
        text = await scrapeUntil(metrics, (t) => sample(t, "portcullis_delayed_bytes_total", { direction: "in" }) > 0, "delayed upload bytes");
        assert.equal(sample(text, "portcullis_shaped_connections"), 1);
        assert.equal(sample(text, "portcullis_bandwidth_keys"), gw.gateway.bandwidth.metrics().keys);
        assert.ok(sample(text, "portcullis_bandwidth_keys") >= 1);
        assert.ok(sample(text, "portcullis_shaped_bytes_total", { direction: "in" }) > 0);
        // Nothing came back from the sink, so nothing waited on the way down.
        assert.equal(sample(text, "portcullis_delayed_bytes_total", { direction: "out" }), 0);
        await assertWellFormed(text, ["127.0.0.", "alice"]);
        text = await scrapeUntil(metrics, (t) => sample(t, "portcullis_shaped_bytes_total", { direction: "in" }) === 48 * 1024, "every byte through the shaper");
      } finally {
        s.destroy();
      }
      await scrapeUntil(metrics, (t) => sample(t, "portcullis_shaped_connections") === 0, "the shaped connection released");
    } finally {
      metrics.close();
      await gw.stop();
      sink.close();
    }
  });
});

describe("snapshot metrics of a signed PostgreSQL policy", () => {
  let f: PgFixture;
  let origin: Origin;
  let gw: Running;
  let gwDoc: { log: Record<string, unknown>; listener: Array<Record<string, unknown> & { policy: Record<string, unknown> }> };
  let pkiDir: string;
  let metrics: GatewayMetrics;
  const key = generateSigningKey();
  let curlVia: (identityCert: { certPath: string; keyPath: string }, url: string) => Promise<string>;
  let client: { certPath: string; keyPath: string };
  const identity = "spiffe://enclave/tampered";

  before(async () => {
    f = await pgFixture("obsperm");
    const pki = await makeTestPki();
    pkiDir = pki.dir;
    client = await pki.clientCert({ cn: "tampered", sanUri: identity });
    const keyPath = join(pkiDir, "authority.pub.pem");
    await writeFile(keyPath, publicKeyPem(key.publicKey));
    origin = await startOrigin("127.0.0.5");
    gwDoc = {
      log: { format: "json", level: "warn" },
      listener: [
        {
          name: "signed",
          kind: "connect",
          bind: "127.0.0.1:0",
          tls: { cert: pki.serverCertPath, key: pki.serverKeyPath, client_ca: pki.caCertPath, identity: "san_uri", require_client_cert: true },
          policy: { source: "postgres", allow_special: ["127.0.0.0/8"], url: f.url, schema: f.schema, public_key: keyPath, cache_ttl: "0s" },
        },
      ],
    };
    gw = await startGateway(gwDoc);
    metrics = new GatewayMetrics(gw.gateway, { processMetrics: false });
    curlVia = (c, url) =>
      new Promise((resolve) => {
        const args = ["-sS", "--max-time", "5", "--proxytunnel", "--proxy", `https://127.0.0.1:${gw.port}`, "--proxy-cacert", pki.caCertPath, "--proxy-cert", c.certPath, "--proxy-key", c.keyPath, url];
        execFile("curl", args, { timeout: 10_000 }, (_err, _stdout, stderr) => resolve(stderr));
      });
  });
  after(async () => {
    metrics?.close();
    await gw?.stop();
    await origin?.close();
    await f?.drop();
  });

  test("readiness, a tampered row counted as bad_signature, and cache misses in the exposition", async () => {
    const text0 = await scrapeUntil(metrics, (t) => sample(t, "portcullis_permission_ready", { listener: "signed" }) === 1, "the policy to be ready");
    assert.equal(sample(text0, "portcullis_permission_rows_rejected_total", { listener: "signed", reason: "bad_signature" }), 0);

    // Signed for port 1 only, then widened in the table without a new signature.
    const rowId = await grant(f, { identity, dest: "127.0.0.5", ports: "1", cidr: "127.0.0.0/8", key }, systemClock.wallNow());
    await f.db.query(`UPDATE ${f.schema}.portcullis_permissions SET port_max = 65535 WHERE id = $1`, [rowId]);
    assert.match(await curlVia(client, `http://127.0.0.5:${origin.port}/`), /403/);

    const text = await metrics.expose();
    assert.equal(sample(text, "portcullis_permission_rows_rejected_total", { listener: "signed", reason: "bad_signature" }), 1);
    for (const reason of ["unknown_key", "expired", "not_yet_valid", "unsigned", "malformed"]) {
      assert.equal(sample(text, "portcullis_permission_rows_rejected_total", { listener: "signed", reason }), 0, reason);
    }
    assert.ok(sample(text, "portcullis_permission_cache_lookups_total", { listener: "signed", result: "miss" }) >= 1);
    assert.equal(sample(text, "portcullis_permission_ready", { listener: "signed" }), 1);
    await assertWellFormed(text, ["127.0.0.", "spiffe", "tampered"]);
  });

  test("a policy whose PostgreSQL does not answer reads as not ready (present at 0, not absent)", async () => {
    const port = await closedPort();
    const doc = { ...gwDoc, listener: gwDoc.listener.map((l) => ({ ...l, policy: { ...l.policy, url: `postgres://postgres@127.0.0.1:${port}/none` } })) };
    const down = await startGateway(doc);
    const m = new GatewayMetrics(down.gateway, { processMetrics: false });
    try {
      const text = await m.expose();
      assert.match(text, /^portcullis_permission_ready\{listener="signed"\} 0$/m);
      assert.equal(sample(text, "portcullis_permission_rows_rejected_total", { listener: "signed", reason: "bad_signature" }), 0);
    } finally {
      m.close();
      await down.stop();
    }
  });
});
