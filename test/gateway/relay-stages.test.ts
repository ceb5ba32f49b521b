/**
 * The gateway's relay built from explicit stages, on real loopback sockets:
 * a byte-cap stage and an IPT stage together carry every byte both ways
 * (through the gates, then the paced writer), pass half-close on, and give
 * the connection's bucket keys back exactly once when the relay ends; a
 * relay with no stage moves the bytes through the read pumps; and nothing
 * is put on the sockets (a pumped socket has the same own fields as any).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import net from "node:net";
import { describe, test } from "node:test";
import { systemClock } from "../../src/core/clock.js";
import { type Rng, seededRng } from "../../src/core/random.js";
import { ByteCapStage } from "../../src/features/bandwidth/cap-stage.js";
import { iptStageFor } from "../../src/features/probe-resistance/ipt-stage.js";
import { ReadBufferPool, adopt, connectPumped, pumpOf } from "../../src/gateway/read-pump.js";
import { NO_STAGES, type RelayStages, relay } from "../../src/gateway/relay.js";
import { IptStage } from "../../src/features/probe-resistance/ipt.js";
import { parseBandwidthConfig } from "../../src/features/bandwidth/bandwidth-config.js";
import { BandwidthRegistry } from "../../src/features/bandwidth/bandwidth-registry.js";
import { withTimeout } from "./fixtures.js";

const KiB = 1024;
const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

class CountingRng implements Rng {
  draws = 0;
  private readonly inner = seededRng(9);
  next(): number {
    this.draws++;
    return this.inner.next();
  }
}

interface Exchange {
  /** What the upstream received from the client. */
  atUpstream: Buffer;
  /** What the client received from the upstream. */
  atClient: Buffer;
  /** The relay's onClosed ran (both sides closed). */
  closed: boolean;
}

/**
 * A gateway in miniature: accepts a client, opens a pumped upstream to a
 * server that reads the client's request until its FIN and then answers
 * with `answer`, and relays the two with `stagesOf()`. The client sends
 * `request`, half-closes and reads until the end.
 */
async function exchange(request: Buffer, answer: Buffer, stagesOf: () => RelayStages): Promise<Exchange> {
  const pool = new ReadBufferPool();
  const upstreamGot: Buffer[] = [];
  const upstreamServer = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on("data", (d: Buffer) => upstreamGot.push(d));
    s.on("end", () => s.end(answer));
    s.on("error", () => s.destroy());
  });
  await new Promise<void>((r) => upstreamServer.listen(0, "127.0.0.1", r));
  let closedResolve!: () => void;
  const closed = new Promise<void>((r) => (closedResolve = r));
  const gateway = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (raw) => {
    const client = adopt(raw, pool) ?? raw;
    const up = connectPumped({ host: "127.0.0.1", port: (upstreamServer.address() as net.AddressInfo).port, allowHalfOpen: true }, pool);
    relay(client, up, stagesOf(), { idleTimeoutMs: 5_000, onClosed: closedResolve });
  });
  await new Promise<void>((r) => gateway.listen(0, "127.0.0.1", r));
  const c = net.connect({ host: "127.0.0.1", port: (gateway.address() as net.AddressInfo).port, allowHalfOpen: true });
  const got: Buffer[] = [];
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        c.on("data", (d: Buffer) => got.push(d));
        c.once("end", () => resolve());
        c.once("error", reject);
        c.end(request);
      }),
      10_000,
      "the exchange",
    );
    c.destroy();
    await withTimeout(closed, 5_000, "the relay's close");
    return { atUpstream: Buffer.concat(upstreamGot), atClient: Buffer.concat(got), closed: true };
  } finally {
    c.destroy();
    gateway.close();
    upstreamServer.close();
  }
}

describe("the relay's stages", () => {
  test("a byte-cap stage and an IPT stage together: both directions gated, the client side paced, half-close kept, keys given back once", async () => {
    const registry = new BandwidthRegistry({
      clock: systemClock,
      config: parseBandwidthConfig({ per_ip: { bytes_per_second: "64MiB", burst: "8MiB" } }),
    });
    const rng = new CountingRng();
    let keysBack = 0;
    const request = randomBytes(100 * KiB);
    const answer = randomBytes(300 * KiB);
    const r = await exchange(request, answer, () => ({
      byteCap: new ByteCapStage(registry.open({ ip: "127.0.0.1" }), () => keysBack++),
      ipt: new IptStage({ clock: systemClock, rng }),
    }));
    assert.equal(sha(r.atUpstream), sha(request), "the request reached the upstream intact");
    assert.equal(sha(r.atClient), sha(answer), "the answer reached the client intact, after the upstream saw the client's FIN");
    const m = registry.metrics();
    assert.equal(m.upload.bytesRelayed, request.length, "the upload went through the gate");
    assert.equal(m.download.bytesRelayed, answer.length, "the download went through the gate");
    assert.ok(rng.draws > 0, "the upstream -> client path went through the IPT writer");
    assert.equal(keysBack, 1, "the stage was closed once, when the relay ended");
  });

  test("each stage alone works, and no stage is a plain pumped relay", async () => {
    const request = randomBytes(40 * KiB);
    const answer = randomBytes(200 * KiB);
    const registry = new BandwidthRegistry({ clock: systemClock, config: parseBandwidthConfig({ per_ip: { bytes_per_second: "64MiB" } }) });
    const rng = new CountingRng();
    const capOnly = await exchange(request, answer, () => ({ byteCap: new ByteCapStage(registry.open({ ip: "127.0.0.1" }), () => {}) }));
    const iptOnly = await exchange(request, answer, () => ({ ipt: new IptStage({ clock: systemClock, rng }) }));
    const none = await exchange(request, answer, () => NO_STAGES);
    for (const r of [capOnly, iptOnly, none]) {
      assert.equal(sha(r.atUpstream), sha(request));
      assert.equal(sha(r.atClient), sha(answer));
    }
    assert.equal(registry.metrics().download.bytesRelayed, answer.length);
    assert.ok(rng.draws > 0);
  });

  test("the IPT stage is chosen from the listener's probe_resistance.ipt only", () => {
    const env = { clock: systemClock, rng: seededRng(1) };
    assert.ok(iptStageFor({ probe_resistance: { ipt: { enabled: true } } }, env) instanceof IptStage);
    assert.equal(iptStageFor({ probe_resistance: { ipt: { enabled: false } } }, env), undefined);
    assert.equal(iptStageFor({}, env), undefined);
    assert.equal(iptStageFor(undefined, env), undefined);
  });

  test("a pumped socket carries nothing of the pump in its own fields", async () => {
    const server = net.createServer(() => {});
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as net.AddressInfo).port;
    const plain = net.connect({ host: "127.0.0.1", port });
    const pumped = connectPumped({ host: "127.0.0.1", port }, new ReadBufferPool());
    try {
      assert.ok(pumpOf(pumped) !== undefined);
      assert.equal(pumpOf(plain), undefined);
      const keys = (s: net.Socket): string[] => Reflect.ownKeys(s).map(String).sort();
      assert.deepEqual(keys(pumped), keys(plain));
    } finally {
      plain.destroy();
      pumped.destroy();
      server.close();
    }
  });
});
