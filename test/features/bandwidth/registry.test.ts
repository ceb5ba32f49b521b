import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../../src/core/clock.js";
import { InvalidArgumentError } from "../../../src/core/errors.js";
import { bandwidthConfig, parseBandwidthConfig } from "../../../src/features/bandwidth/bandwidth-config.js";
import { BandwidthCapacityError, BandwidthRegistry } from "../../../src/features/bandwidth/bandwidth-registry.js";
import { parseByteSize } from "../../../src/features/bandwidth/byte-size.js";
import { greedy } from "../../helpers/greedy-reader.js";

const KiB = 1024;

describe("BandwidthRegistry", () => {
  test("identity buckets are shared by its connections; another identity has its own; directions are separate", () => {
    const clock = new ManualClock(0);
    const reg = new BandwidthRegistry({ clock, config: bandwidthConfig({ perIdentity: { bytesPerSecond: 100 * KiB, burst: 10 * KiB } }) });
    const a1 = reg.open({ ip: "127.0.0.2", identity: "alice" });
    const a2 = reg.open({ ip: "127.0.0.3", identity: "alice" });
    const b1 = reg.open({ ip: "127.0.0.4", identity: "bob" });
    const up = [greedy(a1.upload), greedy(a2.upload), greedy(b1.upload)];
    const down = greedy(a1.download);
    clock.advance(10_000);
    const alice = up[0]!.total + up[1]!.total;
    assert.ok(Math.abs(alice - 1010 * KiB) < 4 * KiB, `alice together ${alice}`);
    assert.ok(Math.abs(up[2]!.total - 1010 * KiB) < 4 * KiB, `bob alone ${up[2]!.total}`);
    assert.ok(Math.abs(down.total - 1010 * KiB) < 4 * KiB, `alice download has its own bucket: ${down.total}`);
    const m = reg.metrics();
    assert.equal(m.upload.bytesRelayed, alice + up[2]!.total);
    assert.equal(m.download.bytesRelayed, down.total);
  });

  test("identity and IP caps both hold: the tighter one wins", () => {
    const clock = new ManualClock(0);
    const reg = new BandwidthRegistry({
      clock,
      config: bandwidthConfig({ perIdentity: { bytesPerSecond: 100 * KiB, burst: 10 * KiB }, perIp: { bytesPerSecond: 20 * KiB, burst: 2 * KiB } }),
    });
    const c = greedy(reg.open({ ip: "10.1.1.1", identity: "alice" }).upload);
    clock.advance(10_000);
    assert.ok(Math.abs(c.total - 202 * KiB) < 4 * KiB, `${c.total}`);
  });

  test("overrides by identity (raise, lower, unlimited) and by CIDR, most specific prefix first", () => {
    const clock = new ManualClock(0);
    const config = bandwidthConfig({
      perIdentity: { bytesPerSecond: 10 * KiB },
      perIp: { bytesPerSecond: 1000 * KiB },
      overrides: {
        vip: { bytesPerSecond: 50 * KiB },
        slow: { upload: { bytesPerSecond: 1 * KiB } },
        free: "unlimited",
        "10.0.0.0/8": { bytesPerSecond: 5 * KiB },
        "10.9.0.0/16": "unlimited",
        "2001:db8::/32": { bytesPerSecond: 7 * KiB },
      },
    });
    const reg = new BandwidthRegistry({ clock, config });
    assert.equal(reg.rateOf("id:vip").upload!.bytesPerSecond, 50 * KiB);
    assert.equal(reg.rateOf("id:slow").upload!.bytesPerSecond, 1 * KiB);
    assert.equal(reg.rateOf("id:slow").download, null);
    assert.equal(reg.rateOf("id:free").upload, null);
    assert.equal(reg.rateOf("id:other").upload!.bytesPerSecond, 10 * KiB);
    assert.equal(reg.rateOf("ip:10.1.2.3").upload!.bytesPerSecond, 5 * KiB);
    assert.equal(reg.rateOf("ip:10.9.2.3").upload, null);
    assert.equal(reg.rateOf("ip:2001:db8:1::/64").upload!.bytesPerSecond, 7 * KiB);
    assert.equal(reg.rateOf("ip:11.0.0.1").upload!.bytesPerSecond, 1000 * KiB);
    const vip = greedy(reg.open({ ip: "192.0.2.1", identity: "vip" }).upload);
    const free = reg.open({ ip: "10.9.0.2", identity: "free" });
    clock.advance(2000);
    assert.ok(Math.abs(vip.total - 150 * KiB) < 2 * KiB, `${vip.total}`);
    assert.equal(free.upload.acquire(500 * KiB, () => {}), 500 * KiB, "unlimited identity from an unlimited network: no wait, no split");
  });

  test("update() re-rates live connections", () => {
    const clock = new ManualClock(0);
    const reg = new BandwidthRegistry({ clock, config: bandwidthConfig({ perIdentity: { bytesPerSecond: 10 * KiB, burst: KiB } }) });
    const conn = reg.open({ ip: "127.0.0.2", identity: "alice" });
    const c = greedy(conn.upload);
    clock.advance(1000);
    const t1 = c.total;
    reg.update(bandwidthConfig({ perIdentity: { bytesPerSecond: 10 * KiB, burst: KiB }, overrides: { alice: { bytesPerSecond: 40 * KiB, burst: KiB } } }));
    clock.advance(1000);
    assert.ok(Math.abs(c.total - t1 - 40 * KiB) < 2 * KiB, `raised: ${c.total - t1}`);
    const t2 = c.total;
    reg.update(bandwidthConfig({ overrides: { alice: { bytesPerSecond: 2 * KiB, burst: KiB } } }));
    clock.advance(1000);
    assert.ok(Math.abs(c.total - t2 - 2 * KiB) < KiB, `lowered: ${c.total - t2}`);
    conn.close();
    const later = reg.open({ ip: "127.0.0.2", identity: "alice" });
    let got = 0;
    assert.equal(later.upload.acquire(100 * KiB, (n) => (got = n)), 0, "still capped: waits");
    reg.update(bandwidthConfig({}));
    assert.equal(got, 100 * KiB, "unlimited now: the waiting ask is granted in full");
  });

  test("bounded: 30,000 one-off identities never grow it past maxKeys, and idle keys expire without timers", () => {
    const clock = new ManualClock(0);
    const reg = new BandwidthRegistry({ clock, maxKeys: 300, idleMs: 100, config: bandwidthConfig({ perIdentity: { bytesPerSecond: 1e6 } }) });
    let max = 0;
    for (let i = 0; i < 30_000; i++) {
      const c = reg.open({ ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, identity: `id-${i}` });
      c.upload.acquire(100, () => {});
      c.close();
      max = Math.max(max, reg.size);
      if (i % 30 === 0) clock.advance(1);
    }
    assert.ok(max <= 300, `size reached ${max}`);
    assert.equal(clock.pendingTimers(), 0);
    clock.advance(10_000);
    for (let i = 0; i < 600; i++) reg.open({ ip: "127.0.0.9", identity: "steady" }).close();
    assert.ok(reg.size <= 3, `idle keys swept: ${reg.size}`);
  });

  test("a full registry whose keys all have connections refuses (fail closed) and counts it", () => {
    const clock = new ManualClock(0);
    const reg = new BandwidthRegistry({ clock, maxKeys: 4, config: bandwidthConfig({ perIdentity: { bytesPerSecond: 1000 } }) });
    reg.open({ ip: "127.0.0.2", identity: "a" });
    reg.open({ ip: "127.0.0.3", identity: "b" });
    assert.throws(() => reg.open({ ip: "127.0.0.4", identity: "c" }), BandwidthCapacityError);
    assert.equal(reg.metrics().refused, 1);
    assert.ok(reg.size <= 4);
  });
});

describe("bandwidth configuration", () => {
  test("parses the [bandwidth] table with sizes, directions, unlimited and CIDR overrides", () => {
    const c = parseBandwidthConfig({
      per_identity: { bytes_per_second: "10MiB", burst: "1MiB" },
      per_ip: { upload: { bytes_per_second: "1MB" }, download: "unlimited" },
      overrides: { "spiffe://enclave/agent-7": { bytes_per_second: "100MiB" }, "10.0.0.0/8": "unlimited", ops: { unlimited: true } },
    });
    assert.deepEqual(c.perIdentity.upload, { bytesPerSecond: 10 * 1024 * 1024, burst: 1024 * 1024 });
    assert.deepEqual(c.perIp.upload, { bytesPerSecond: 1e6 });
    assert.equal(c.perIp.download, null);
    assert.equal(c.identityOverrides.get("spiffe://enclave/agent-7")!.download!.bytesPerSecond, 100 * 1024 * 1024);
    assert.equal(c.identityOverrides.get("ops")!.upload, null);
    assert.equal(c.cidrOverrides[0]!.cidr.text, "10.0.0.0/8");
  });

  test("bad input fails with the key path", () => {
    const bad: [unknown, string][] = [
      [{ per_identity: { bytes_per_second: "fast" } }, "bandwidth.per_identity.bytes_per_second"],
      [{ per_identity: { bytes_per_second: -1 } }, "bandwidth.per_identity.bytes_per_second"],
      [{ per_ip: { bytes_per_second: 1, burst: "0" } }, "bandwidth.per_ip.burst"],
      [{ per_ip: { bytes_per_second: 1, brust: 2 } }, "bandwidth.per_ip.brust"],
      [{ overrides: { x: 5 } }, 'bandwidth.overrides."x"'],
      [{ per_host: {} }, "bandwidth.per_host"],
      ["nope", "bandwidth"],
    ];
    for (const [raw, path] of bad) {
      assert.throws(() => parseBandwidthConfig(raw), (e: unknown) => e instanceof InvalidArgumentError && e.param === path, path);
    }
  });

  test("byte sizes", () => {
    assert.equal(parseByteSize("x", "1.5 KiB"), 1536);
    assert.equal(parseByteSize("x", "2GB"), 2e9);
    assert.equal(parseByteSize("x", 4096), 4096);
    assert.throws(() => parseByteSize("x", "1 PB"), InvalidArgumentError);
    assert.throws(() => parseByteSize("x", Infinity), InvalidArgumentError);
  });
});
