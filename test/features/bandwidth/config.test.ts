/**
 * The `[bandwidth]` section of the configuration: sizes through the
 * configuration's size parser, the three shapes of a rate, overrides by
 * identity and CIDR, errors naming the key path, and defaults that keep
 * older files loading.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { validateConfig } from "../../../src/gateway/config/load.js";
import { effectiveConfig } from "../../../src/gateway/config/effective.js";
import { parseBandwidthConfig } from "../../../src/features/bandwidth/bandwidth-config.js";

const LISTENER = [{ name: "egress", kind: "connect", bind: "127.0.0.1:0" }];

function problems(bandwidth: unknown): string[] {
  const r = validateConfig({ listener: LISTENER, bandwidth });
  return r.ok ? [] : r.problems;
}

describe("[bandwidth] configuration", () => {
  test("absent means no caps, and the effective configuration shows an empty section", () => {
    const r = validateConfig({ listener: LISTENER });
    assert.ok(r.ok);
    assert.deepEqual(r.config.bandwidth, {});
    const b = parseBandwidthConfig(r.config.bandwidth);
    assert.deepEqual(b.perIdentity, { upload: null, download: null });
    assert.deepEqual(b.perIp, { upload: null, download: null });
    assert.deepEqual(effectiveConfig(r.config).bandwidth, {});
  });

  test("sizes are read by the configuration's size parser and stored as bytes", () => {
    const r = validateConfig({
      listener: LISTENER,
      bandwidth: {
        per_identity: { bytes_per_second: "10MiB", burst: "1MiB" },
        per_ip: { upload: { bytes_per_second: 1_000_000 }, download: "unlimited" },
        overrides: { "spiffe://enclave/agent-7": { bytes_per_second: "100MiB" }, batch: { unlimited: true }, "10.0.0.0/8": { bytes_per_second: "50MB" } },
      },
    });
    assert.ok(r.ok, r.ok ? "" : r.problems.join("; "));
    assert.deepEqual(r.config.bandwidth, {
      per_identity: { bytes_per_second: 10 * 1024 * 1024, burst: 1024 * 1024 },
      per_ip: { upload: { bytes_per_second: 1_000_000 }, download: "unlimited" },
      overrides: { "spiffe://enclave/agent-7": { bytes_per_second: 100 * 1024 * 1024 }, batch: "unlimited", "10.0.0.0/8": { bytes_per_second: 50_000_000 } },
    });
    const b = parseBandwidthConfig(r.config.bandwidth);
    assert.deepEqual(b.perIp, { upload: { bytesPerSecond: 1_000_000 }, download: null });
    assert.deepEqual(b.identityOverrides.get("batch"), { upload: null, download: null });
    assert.equal(b.cidrOverrides.length, 1);
  });

  test("errors name the key path", () => {
    assert.match(problems({ per_ip: { bytes_per_second: "fast" } }).join("\n"), /^bandwidth\.per_ip\.bytes_per_second: expected a size/m);
    assert.match(problems({ per_identity: { bytes_per_second: "1MiB", burst: 0 } }).join("\n"), /^bandwidth\.per_identity\.burst: expected a size/m);
    assert.match(problems({ per_ip: { upload: { bytes_per_second: "1MiB", rate: 2 } } }).join("\n"), /^bandwidth\.per_ip\.upload\.rate: unknown key/m);
    assert.match(problems({ per_user: {} }).join("\n"), /^bandwidth\.per_user: unknown key/m);
    assert.match(problems({ overrides: { bob: "fast" } }).join("\n"), /^bandwidth\.overrides\.bob: expected/m);
    assert.match(problems("10MiB").join("\n"), /^bandwidth: expected a table/m);
  });
});
