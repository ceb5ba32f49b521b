/**
 * The bandwidth panel's "held back longest" list (/v1/stats
 * bandwidth.top_throttled): throttled time per identity and per address,
 * per direction, on a manual clock, most first, counting a wait still going
 * on, and leaving out keys that never waited.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/core/clock.js";
import { bandwidthConfig } from "../../src/features/bandwidth/bandwidth-config.js";
import { BandwidthRegistry } from "../../src/features/bandwidth/bandwidth-registry.js";
import { greedy } from "../helpers/greedy-reader.js";

const KiB = 1024;

describe("throttled time by identity and address", () => {
  test("each key's own waits, per direction, most first; unthrottled keys are left out", () => {
    const clock = new ManualClock(0);
    const reg = new BandwidthRegistry({
      clock,
      config: bandwidthConfig({ perIdentity: { bytesPerSecond: 10 * KiB, burst: KiB }, perIp: { bytesPerSecond: 10 * KiB, burst: KiB } }),
    });
    // alice uploads without pause for 3 s; 10.0.0.2 (no identity) downloads for 1 s, then stops.
    const alice = reg.open({ ip: "10.0.0.1", identity: "alice" });
    greedy(alice.upload);
    const anon = reg.open({ ip: "10.0.0.2" });
    greedy(anon.download);
    clock.advance(1000);
    anon.close();
    clock.advance(2000);
    // bob connects but sends nothing: never throttled, never listed.
    reg.open({ ip: "10.0.0.3", identity: "bob" });

    const rows = reg.throttled(10);
    assert.deepEqual(
      rows.map((r) => r.key),
      ["id:alice", "ip:10.0.0.2"],
      "alice's identity bucket is the tighter stage, so her address bucket never had to wait",
    );
    const [a, anonRow] = rows;
    // A wait still going on counts up to now.
    assert.ok(a!.uploadMs >= 2900 && a!.uploadMs <= 3000, `alice upload ${a!.uploadMs}`);
    assert.equal(a!.downloadMs, 0);
    assert.ok(anonRow!.downloadMs >= 900 && anonRow!.downloadMs <= 1000, `10.0.0.2 download ${anonRow!.downloadMs}`);
    assert.equal(anonRow!.uploadMs, 0);
    assert.deepEqual(reg.throttled(1).map((r) => r.key), ["id:alice"]);
    assert.deepEqual(reg.throttled(0), []);
    // The per-key times add up to the direction totals the metrics report.
    const m = reg.metrics();
    assert.ok(Math.abs(m.download.throttledMs - anonRow!.downloadMs) <= 1, `${m.download.throttledMs}`);
  });
});
