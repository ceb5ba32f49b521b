import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../../src/core/clock.js";
import { bandwidthConfig } from "../../../src/features/bandwidth/bandwidth-config.js";
import { BandwidthRegistry } from "../../../src/features/bandwidth/bandwidth-registry.js";
import { ByteBucket, type RateSpec } from "../../../src/algorithms/byte-bucket.js";
import type { QuotaSource } from "../../../src/features/bandwidth/quota.js";
import { greedy } from "../../helpers/greedy-reader.js";

/** A shared budget on the same clock: one byte bucket per key, granting what it has (synchronous). */
class SharedSource implements QuotaSource {
  readonly buckets = new Map<string, ByteBucket>();
  calls = 0;
  constructor(private readonly clock: ManualClock) {}
  take(key: string, bytes: number, spec: RateSpec): number {
    this.calls++;
    let b = this.buckets.get(key);
    if (!b) this.buckets.set(key, (b = new ByteBucket(spec)));
    const n = Math.min(bytes, b.available(this.clock.now()));
    if (n > 0) b.take(this.clock.now(), n);
    return n;
  }
}

describe("quota sources behind the registry", () => {
  test("two registries on one source hold one identity's cap together, within one slice each", () => {
    const clock = new ManualClock(0);
    const source = new SharedSource(clock);
    const config = bandwidthConfig({ perIdentity: { bytesPerSecond: 100_000, burst: 10_000 } });
    const slice = 4000;
    const g1 = new BandwidthRegistry({ clock, config, quota: { source, sliceBytes: slice } });
    const g2 = new BandwidthRegistry({ clock, config, quota: { source, sliceBytes: slice } });
    const a = greedy(g1.open({ ip: "127.0.0.2", identity: "alice" }).upload);
    const b = greedy(g2.open({ ip: "127.0.0.3", identity: "alice" }).upload);
    clock.advance(10_000);
    const total = a.total + b.total;
    assert.ok(total <= 10_000 + 100_000 * 10 + 2 * slice, `combined ${total}`);
    assert.ok(total >= 100_000 * 10 * 0.95, `not starved: ${total}`);
  });

  test("with `ip`, two registries on one source hold one address's cap together; without it each has its own", () => {
    const run = (ip: boolean): number => {
      const clock = new ManualClock(0);
      const source = new SharedSource(clock);
      const config = bandwidthConfig({ perIp: { bytesPerSecond: 100_000, burst: 10_000 } });
      const slice = 4000;
      const g1 = new BandwidthRegistry({ clock, config, quota: { source, sliceBytes: slice, ip } });
      const g2 = new BandwidthRegistry({ clock, config, quota: { source, sliceBytes: slice, ip } });
      const a = greedy(g1.open({ ip: "127.0.0.2" }).upload);
      const b = greedy(g2.open({ ip: "127.0.0.2" }).upload);
      clock.advance(10_000);
      return a.total + b.total;
    };
    const shared = run(true);
    assert.ok(shared <= 10_000 + 100_000 * 10 + 2 * 4000, `combined ${shared}`);
    assert.ok(shared >= 100_000 * 10 * 0.95, `not starved: ${shared}`);
    const local = run(false);
    assert.ok(local >= 2 * 100_000 * 10 * 0.95, `per-IP buckets stay local without \`ip\`: ${local}`);
  });

  test("a source that grants nothing is asked again after a random wait in [0.5, 1.5) × retryMs", () => {
    const clock = new ManualClock(0);
    const asked: number[] = [];
    const source: QuotaSource = {
      take: () => {
        asked.push(clock.now());
        return 0;
      },
    };
    const draws = [0, 0.999, 0.5];
    let i = 0;
    const rng = { next: () => draws[i++ % draws.length]! };
    const reg = new BandwidthRegistry({ clock, config: bandwidthConfig({ perIdentity: { bytesPerSecond: 10_000 } }), quota: { source, retryMs: 100, rng } });
    greedy(reg.open({ ip: "127.0.0.2", identity: "alice" }).upload);
    for (let t = 0; t < 400; t++) clock.advance(1);
    const gaps = asked.slice(1, 4).map((t, k) => Math.round(t - asked[k]!));
    assert.deepEqual(gaps, [50, 150, 100]);
  });

  test("a failing source grants nothing (fail closed) and is retried", async () => {
    const clock = new ManualClock(0);
    let fail = true;
    let calls = 0;
    const source: QuotaSource = {
      take: (_k, bytes) => {
        calls++;
        return fail ? Promise.reject(new Error("down")) : bytes;
      },
    };
    const reg = new BandwidthRegistry({ clock, config: bandwidthConfig({ perIdentity: { bytesPerSecond: 10_000 } }), quota: { source, retryMs: 50 } });
    const c = greedy(reg.open({ ip: "127.0.0.2", identity: "alice" }).upload);
    for (let i = 0; i < 10; i++) {
      await Promise.resolve();
      clock.advance(50);
    }
    assert.equal(c.total, 0);
    assert.ok(calls >= 3, `retried: ${calls}`);
    fail = false;
    for (let i = 0; i < 10; i++) {
      await Promise.resolve();
      clock.advance(50);
    }
    assert.ok(c.total > 0, "flows again once the source answers");
  });
});
