/**
 * Shape padding of what masked clients send on to the mask host, and
 * `mask = false`: a client that is not served is drained, then closed with
 * a FIN (never reset), in the library (ManualClock) and through the real
 * `portcullis run` process.
 */
import assert from "node:assert/strict";
import { GatewayProcess } from "../../helpers/gateway-process.js";
import { mkdtemp, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { describe, test } from "node:test";
import { ManualClock } from "../../../src/core/clock.js";
import { seededRng } from "../../../src/core/random.js";
import { InvalidArgumentError } from "../../../src/core/errors.js";
import { DRAIN_DEFAULTS, drainLimits } from "../../../src/features/probe-resistance/drain.js";
import { relayToMask } from "../../../src/features/probe-resistance/mask-relay.js";
import { handleMaskedTlsConnection } from "../../../src/features/probe-resistance/masked-tls-listener.js";
import { paddedLength, shapePadding } from "../../../src/features/probe-resistance/shape-padding.js";
import { withTimeout } from "../../gateway/fixtures.js";
import { closedPort, selfSigned } from "./fixtures.js";
import { waitUntil, sleep } from "../../helpers/wait.js";

describe("shape padding", () => {
  test("the smallest floor x 2^k at or above the total, capped; above the cap unpadded", () => {
    assert.equal(paddedLength(700), 1024);
    assert.equal(paddedLength(3000), 4096);
    assert.equal(paddedLength(5000), 5000);
    assert.equal(paddedLength(1), 512);
    assert.equal(paddedLength(512), 512);
    assert.equal(paddedLength(513), 1024);
    assert.equal(paddedLength(4096), 4096);
    assert.equal(paddedLength(0), 0, "nothing sent, nothing added");
    assert.equal(paddedLength(700, { floor: 100, cap: 300 }), 700);
    assert.equal(paddedLength(150, { floor: 100, cap: 300 }), 200);
    assert.equal(paddedLength(250, { floor: 100, cap: 300 }), 300, "capped");
  });

  test("above the cap, blur adds U[0..max] bytes (U[1..max] in aggressive mode)", () => {
    const rng = seededRng(3);
    const plain = Array.from({ length: 2000 }, () => paddedLength(5000, { blurMax: 64 }, rng) - 5000);
    assert.ok(plain.every((n) => n >= 0 && n <= 64));
    assert.ok(plain.includes(0) && plain.includes(64), "both ends reachable");
    const aggressive = Array.from({ length: 2000 }, () => paddedLength(5000, { blurMax: 64, aggressive: true }, rng) - 5000);
    assert.ok(aggressive.every((n) => n >= 1 && n <= 64));
    assert.ok(aggressive.includes(1) && aggressive.includes(64));
    assert.equal(shapePadding(700, {}, rng).length, 324);
  });

  test("bad options are refused with the field named", () => {
    assert.throws(() => paddedLength(1, { floor: 0 }), (e: unknown) => e instanceof InvalidArgumentError && e.param === "floor");
    assert.throws(() => paddedLength(1, { floor: 512, cap: 100 }), (e: unknown) => e instanceof InvalidArgumentError && e.param === "cap");
    assert.throws(() => paddedLength(1, { blurMax: -1 }), (e: unknown) => e instanceof InvalidArgumentError && e.param === "blurMax");
  });

  test("the mask host sees the client's bytes padded to the bucket when the client finishes; the client sees the answer untouched", async () => {
    const received: Buffer[] = [];
    const answer = Buffer.from("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    const mask = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on("data", (d: Buffer) => received.push(d));
      s.on("end", () => s.end(answer));
    });
    await new Promise<void>((r) => mask.listen(0, "127.0.0.1", () => r()));
    const front = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (c) => {
      void relayToMask(c, Buffer.alloc(0), { mask: { host: "127.0.0.1", port: (mask.address() as net.AddressInfo).port }, shapePadding: {}, rng: seededRng(1) });
    });
    await new Promise<void>((r) => front.listen(0, "127.0.0.1", () => r()));
    try {
      const sent = Buffer.alloc(700, 0x41);
      const got = await withTimeout(
        new Promise<Buffer>((resolve) => {
          const chunks: Buffer[] = [];
          const c = net.connect({ port: (front.address() as net.AddressInfo).port, host: "127.0.0.1", allowHalfOpen: true }, () => c.end(sent));
          c.on("data", (d: Buffer) => chunks.push(d));
          c.on("end", () => resolve(Buffer.concat(chunks)));
        }),
        5_000,
        "the answer",
      );
      assert.deepEqual(got, answer);
      const all = Buffer.concat(received);
      assert.equal(all.length, 1024, "700 bytes padded to the 1024 bucket");
      assert.deepEqual(all.subarray(0, 700), sent, "the client's bytes first, unchanged");
    } finally {
      front.close();
      mask.close();
    }
  });
});

/** A TLS listener without a mask host, on a manual clock; the client's view of the close. */
async function noMaskListener(clock: ManualClock) {
  const cert = await selfSigned("gw.test");
  const secureContext = tls.createSecureContext({ cert: cert.cert, key: cert.key });
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    void handleMaskedTlsConnection(s, { names: ["gw.test"], secureContext, clock, drain: { maxBytes: 64 * 1024 }, onTerminated: () => {} });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const connect = (first: Buffer) => {
    const c = net.connect({ port: (server.address() as net.AddressInfo).port, host: "127.0.0.1", allowHalfOpen: true });
    const seen = { bytes: 0, fin: false, reset: false, closed: false };
    c.on("connect", () => c.write(first));
    c.on("data", (d: Buffer) => (seen.bytes += d.length));
    c.on("end", () => (seen.fin = true));
    c.on("error", () => (seen.reset = true));
    c.on("close", () => (seen.closed = true));
    return { c, seen };
  };
  return { connect, close: () => server.close() };
}

describe("mask = false drains, then closes with a FIN", () => {
  test("defaults: 5 MiB, 60 s total, 5 s idle", () => {
    assert.deepEqual(drainLimits(), { maxBytes: 5 * 1024 * 1024, totalTimeoutMs: 60_000, idleTimeoutMs: 5_000 });
    assert.deepEqual(DRAIN_DEFAULTS, { maxBytes: 5 * 1024 * 1024, totalTimeoutMs: 60_000, idleTimeoutMs: 5_000 });
  });

  test("a silent client after garbage: drained, FIN after the idle time (manual clock), never a reset", async () => {
    const clock = new ManualClock();
    const l = await noMaskListener(clock);
    try {
      const { c, seen } = l.connect(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
      await sleep(150);
      c.write(Buffer.alloc(1000, 1));
      await sleep(100);
      assert.equal(seen.fin || seen.reset, false, "still open while the client may send");
      clock.advance(4_999);
      await sleep(50);
      assert.equal(seen.fin, false);
      clock.advance(2);
      await waitUntil(() => seen.fin, { timeoutMs: 3_000, message: "the FIN" });
      assert.equal(seen.reset, false);
      assert.equal(seen.bytes, 0, "no byte of the gateway's own");
      c.destroy();
    } finally {
      l.close();
    }
  });

  test("a client that finishes sending gets a FIN at once; one over the byte cap gets a FIN after the cap", async () => {
    const clock = new ManualClock();
    const l = await noMaskListener(clock);
    try {
      const a = l.connect(Buffer.from("\x00garbage"));
      a.c.once("connect", () => setTimeout(() => a.c.end(), 50));
      await waitUntil(() => a.seen.fin, { timeoutMs: 3_000, message: "the FIN after the client's" });
      assert.equal(a.seen.reset, false);
      const b = l.connect(Buffer.alloc(100 * 1024, 7));
      await waitUntil(() => b.seen.fin, { timeoutMs: 3_000, message: "the FIN after 64 KiB" });
      // What the client still sends is read and dropped: its close stays orderly.
      b.c.end(Buffer.alloc(10_000, 1));
      await waitUntil(() => b.seen.closed, { timeoutMs: 3_000, message: "closed" });
      assert.equal(b.seen.reset, false);
    } finally {
      l.close();
    }
  });

  test("through `portcullis run`: a connect listener with mask = false drains a probe and closes it with a FIN", async () => {
    const dir = await mkdtemp(join(tmpdir(), "portcullis-drain-"));
    const port = await closedPort();
    const file = join(dir, "portcullis.toml");
    await writeFile(
      file,
      [
        "[[listener]]",
        'name = "egress"',
        'kind = "connect"',
        `bind = "127.0.0.1:${port}"`,
        'probe_resistance = { mask = false, drain = { idle_timeout = "300ms" } }',
        "",
      ].join("\n"),
    );
    const gw = new GatewayProcess(file);
    try {
      const up = async (): Promise<boolean> =>
        new Promise((resolve) => {
          const s = net.connect(port, "127.0.0.1", () => {
            s.destroy();
            resolve(true);
          });
          s.on("error", () => resolve(false));
        });
      const started = performance.now();
      while (!(await up())) {
        // A bound, not a measurement: starting the CLI through tsx takes tens of seconds on a loaded 2-core machine.
        assert.ok(performance.now() - started < 90_000 && gw.child.exitCode === null, `gateway did not start: ${gw.stderr}`);
        await sleep(50);
      }
      const r = await withTimeout(
        new Promise<{ bytes: number; end: string }>((resolve) => {
          let bytes = 0;
          const c = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true }, () => c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
          c.on("data", (d: Buffer) => (bytes += d.length));
          c.on("end", () => {
            resolve({ bytes, end: "fin" });
            c.destroy();
          });
          c.on("error", () => resolve({ bytes, end: "reset" }));
        }),
        10_000,
        "the close",
      );
      assert.equal(r.end, "fin");
      // (How long the drain waits is proven on the manual clock above; here: the real process drains and FINs.)
      assert.equal(r.bytes, 0);
    } finally {
      gw.child.kill("SIGTERM");
      await gw.exit(30_000);
    }
  });

  test("`portcullis run` refuses a bad probe_resistance key with exit 2 and the key path", async () => {
    const dir = await mkdtemp(join(tmpdir(), "portcullis-badpr-"));
    const file = join(dir, "portcullis.toml");
    await writeFile(
      file,
      ["[[listener]]", 'name = "egress"', 'kind = "connect"', 'bind = "127.0.0.1:0"', 'probe_resistance = { mask = "127.0.0.1:1", shape_padding = { bucket_floor = "4KiB", bucket_cap = "1KiB" } }', ""].join("\n"),
    );
    const gw = new GatewayProcess(file);
    const code = await gw.exit(90_000);
    assert.equal(code, 2);
    assert.match(gw.stderr, /probe_resistance\.shape_padding\.bucket_cap/);
    assert.doesNotMatch(gw.stderr, /\n\s+at /, "no stack trace");
  });
});
