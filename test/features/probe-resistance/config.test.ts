/**
 * The probe_resistance, server_names, policy and revoke_closes_tunnels
 * listener keys: defaults, refusals with the key path, and the effective
 * configuration printing them back in a form that loads again.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { effectiveConfig } from "../../../src/gateway/config/effective.js";
import { validateConfig } from "../../../src/gateway/config/load.js";

function listenerDoc(l: Record<string, unknown>): Record<string, unknown> {
  return { listener: [{ name: "l", bind: "127.0.0.1:0", ...l }] };
}

function problems(l: Record<string, unknown>): string {
  const r = validateConfig(listenerDoc(l));
  assert.equal(r.ok, false, "the configuration is refused");
  return r.ok ? "" : r.problems.join("\n");
}

describe("probe resistance and signed policy keys", () => {
  test("defaults fill a minimal probe_resistance block", () => {
    const r = validateConfig(listenerDoc({ kind: "connect", probe_resistance: { mask: "www.example.org:443" } }));
    assert.ok(r.ok, r.ok ? "" : r.problems.join("; "));
    const p = r.config.listener[0]!.probe_resistance!;
    assert.deepEqual(
      { ...p },
      {
        mask: "www.example.org:443",
        unknown_sni_action: "mask",
        drs: true,
        ipt: { enabled: false },
        // No added delay: the mask relay carries the mask host's own timing.
        delay: { floor: 0, ceiling: 0 },
        classify_window: "0ms",
        max_bytes: 5 * 1024 * 1024,
        // Relay caps longer than the mask host's own waits (nginx: 60 s).
        total_timeout: 600_000,
        idle_timeout: 120_000,
        max_masked_per_address: 8,
        shape_padding: { enabled: false, bucket_floor: 512, bucket_cap: 4096, blur_max: 0, aggressive: false },
        drain: { max_bytes: 5 * 1024 * 1024, total_timeout: 60_000, idle_timeout: 5_000 },
      },
    );
    assert.equal(r.config.listener[0]!.revoke_closes_tunnels, false);
    assert.equal(r.config.listener[0]!.policy, undefined);
  });

  test("inter-packet timing loads on a connect listener and on a TLS tcp listener", () => {
    for (const l of [
      { kind: "connect", probe_resistance: { mask: "a:1", ipt: { enabled: true } } },
      { kind: "tcp", upstream: "127.0.0.1:1", tls: { cert: "c.pem", key: "k.pem" }, server_names: ["a.test"], probe_resistance: { mask: "a:1", ipt: { enabled: true } } },
    ]) {
      const r = validateConfig(listenerDoc(l));
      assert.ok(r.ok, r.ok ? "" : r.problems.join("; "));
      assert.equal(r.config.listener[0]!.probe_resistance!.ipt.enabled, true);
    }
  });

  test("mask = false, shape padding and the classify window load", () => {
    const r = validateConfig(
      listenerDoc({
        kind: "connect",
        probe_resistance: { mask: false, classify_window: "5ms", shape_padding: { enabled: true, blur_max: "1KiB", aggressive: true }, drain: { max_bytes: "1MiB" } },
      }),
    );
    assert.ok(r.ok, r.ok ? "" : r.problems.join("; "));
    const p = r.config.listener[0]!.probe_resistance!;
    assert.equal(p.mask, false);
    assert.equal(p.classify_window, "5ms");
    assert.deepEqual(p.shape_padding, { enabled: true, bucket_floor: 512, bucket_cap: 4096, blur_max: 1024, aggressive: true });
    assert.equal(p.drain.max_bytes, 1024 * 1024);
  });

  test("a listener without the new keys loads as before", () => {
    const r = validateConfig(listenerDoc({ kind: "connect" }));
    assert.ok(r.ok);
    assert.equal(r.config.listener[0]!.probe_resistance, undefined);
  });

  test("mistakes are refused with the key path", () => {
    assert.match(problems({ kind: "connect", probe_resistance: { mask: "nohost" } }), /probe_resistance\.mask/);
    assert.match(problems({ kind: "tcp", upstream: "127.0.0.1:1", probe_resistance: { mask: "a:1" } }), /server_names/);
    assert.match(problems({ kind: "connect", probe_resistance: { mask: "a:1", ipt: { enabled: "yes" } } }), /ipt\.enabled/);
    assert.match(problems({ kind: "connect", probe_resistance: { mask: "a:1", ipt: { burst: 1 } } }), /ipt/);
    assert.match(problems({ kind: "connect", probe_resistance: { mask: "a:1", delay: { floor: "2s", ceiling: "1s" } } }), /floor must not exceed ceiling/);
    assert.match(problems({ kind: "connect", probe_resistance: { mask: "a:1", unknown_sni_action: "drop" } }), /unknown_sni_action/);
    assert.match(problems({ kind: "connect", probe_resistance: { mask: true } }), /probe_resistance\.mask/);
    assert.match(problems({ kind: "connect", probe_resistance: { mask: "a:1", classify_window: "5s" } }), /probe_resistance\.classify_window/);
    assert.match(problems({ kind: "connect", probe_resistance: { mask: "a:1", max_masked_per_address: 0 } }), /probe_resistance\.max_masked_per_address/);
    assert.match(problems({ kind: "connect", probe_resistance: { mask: "a:1", shape_padding: { bucket_floor: "4KiB", bucket_cap: "1KiB" } } }), /probe_resistance\.shape_padding\.bucket_cap/);
    assert.match(problems({ kind: "connect", probe_resistance: { mask: "a:1", shape_padding: { blur_max: -1 } } }), /probe_resistance\.shape_padding\.blur_max/);
    assert.match(problems({ kind: "connect", probe_resistance: { mask: "a:1", drain: { idle_timeout: "0s" } } }), /probe_resistance\.drain\.idle_timeout/);
    assert.match(problems({ kind: "connect", server_names: ["a.test"] }), /server_names/);
    assert.match(problems({ kind: "tcp", upstream: "127.0.0.1:1", policy: { source: "postgres", url: "postgres://x", public_key: "k.pem" } }), /policy/);
    assert.match(problems({ kind: "connect", policy: { source: "mysql", public_key: "k.pem" } }), /policy\.source/);
    assert.match(problems({ kind: "connect", policy: { source: "postgres", public_key: "k.pem", schema: "a;drop" } }), /policy\.schema/);
    assert.match(problems({ kind: "connect", policy: { source: "postgres", public_key: "k.pem", allow_special: ["nope"] } }), /allow_special/);
  });

  test("the effective configuration prints durations as durations, redacts the policy password, and loads again", () => {
    const doc = listenerDoc({
      kind: "connect",
      probe_resistance: { mask: "www.example.org:443", delay: { floor: "0s", ceiling: "250ms" }, total_timeout: "30s" },
      policy: { source: "postgres", url: "postgres://gw:hunter2@db:5432/p", public_key: ["a.pem", "b.pem"], cache_ttl: "5s", allow_special: ["127.0.0.0/8"] },
      revoke_closes_tunnels: true,
    });
    const r = validateConfig(doc);
    assert.ok(r.ok, r.ok ? "" : r.problems.join("; "));
    const eff = effectiveConfig(r.config);
    const l = (eff.listener as Array<Record<string, Record<string, unknown>>>)[0]!;
    assert.deepEqual(l.probe_resistance!.delay, { floor: "0s", ceiling: "250ms" });
    assert.equal(l.policy!.cache_ttl, "5s");
    assert.equal(l.policy!.url, "postgres://gw:<redacted>@db:5432/p");
    assert.doesNotMatch(JSON.stringify(eff), /hunter2/);
    const again = validateConfig(eff);
    assert.ok(again.ok, again.ok ? "" : again.problems.join("; "));
    assert.deepEqual(again.config.listener[0]!.probe_resistance, r.config.listener[0]!.probe_resistance);
  });
});
