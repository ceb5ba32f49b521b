/**
 * The udp listener fields and the `[[policy.rule]]` tables, validated by
 * their feature's own section (src/features/udp, src/features/permissions) as
 * composed into the gateway's schema: what they accept, and each refusal
 * naming its key path.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { validateConfig } from "../../src/gateway/config/load.js";

const connect = { name: "c", kind: "connect", bind: "127.0.0.1:1" };

function problemsOf(doc: unknown): string[] {
  const r = validateConfig(doc);
  assert.ok(!r.ok, `accepted ${JSON.stringify(doc)}`);
  return r.problems;
}

describe("udp listener fields", () => {
  test("a udp listener takes its caps and flow table, as numbers", () => {
    const r = validateConfig({
      listener: [{ name: "u", kind: "udp", bind: "127.0.0.1:5353", upstream: "127.0.0.1:53", bytes_per_second: "64KiB", packets_per_second: 100, max_flows: 50, flow_idle_timeout: "10s", max_flows_per_ip: 4 }],
    });
    assert.ok(r.ok, JSON.stringify(r));
    const l = r.config.listener[0]!;
    assert.deepEqual([l.bytes_per_second, l.packets_per_second, l.max_flows, l.flow_idle_timeout, l.max_flows_per_ip], [65_536, 100, 50, 10_000, 4]);
    assert.deepEqual(l.upstream, { host: "127.0.0.1", port: 53 });
  });

  test("no TLS and no URL upstream on a udp listener", () => {
    assert.deepEqual(problemsOf({ listener: [{ name: "u", kind: "udp", bind: "127.0.0.1:1", upstream: "127.0.0.1:53", tls: { cert: "c.pem", key: "k.pem" } }] }), [
      'listener[0].tls: not for kind "udp"',
    ]);
    assert.ok(
      problemsOf({ listener: [{ name: "u", kind: "udp", bind: "127.0.0.1:1", upstream: "http://127.0.0.1:53" }] }).includes(
        'listener[0].upstream: required for kind "udp" as "host:port", e.g. "127.0.0.1:53"',
      ),
    );
  });

  test("each udp key on another kind is refused by name, in the file's order", () => {
    assert.deepEqual(problemsOf({ listener: [{ ...connect, bytes_per_second: "1KiB", packets_per_second: 1, max_flows: 1, flow_idle_timeout: "1s", max_flows_per_ip: 1 }] }), [
      'listener[0].bytes_per_second: only for kind "udp"',
      'listener[0].packets_per_second: only for kind "udp"',
      'listener[0].max_flows: only for kind "udp"',
      'listener[0].flow_idle_timeout: only for kind "udp"',
      'listener[0].max_flows_per_ip: only for kind "udp"',
    ]);
  });
});

describe("[[policy.rule]]", () => {
  test("ports as numbers and ranges, hosts as patterns, defaults for what is left out", () => {
    const r = validateConfig({
      listener: [connect],
      policy: { rule: [{ identities: ["*"], hosts: ["*.example.com"], ports: [443, "8000-8080"], cidrs: ["10.0.0.0/8"] }, { identities: ["bob"] }] },
    });
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(r.config.policy.rule, [
      { identities: ["*"], hosts: ["*.example.com"], ports: [443, [8000, 8080]], cidrs: ["10.0.0.0/8"] },
      { identities: ["bob"], hosts: [], ports: [], cidrs: [] },
    ]);
    const none = validateConfig({ listener: [connect] });
    assert.ok(none.ok);
    assert.deepEqual(none.config.policy, { rule: [] });
  });

  test("every bad field names its key path", () => {
    assert.deepEqual(problemsOf({ listener: [connect], policy: { rule: [{ identities: [], hosts: ["Bad Host"], ports: [0, "9-8", 80], cidrs: ["nope"], extra: 1 }] } }), [
      'policy.rule[0].identities: expected at least one identity ("*" for any)',
      'policy.rule[0].hosts[0]: expected a host pattern ("api.example.com", "*.example.com", "*" or an IP) in lower case, got "Bad Host"',
      'policy.rule[0].ports[0]: expected a port (1-65535) or a range "8000-8080", got 0',
      'policy.rule[0].ports[1]: expected a port (1-65535) or a range "8000-8080", got "9-8"',
      'policy.rule[0].cidrs[0]: expected a CIDR block such as "10.0.0.0/8" or "2001:db8::/32", or an address, got "nope" (not an IP address)',
      "policy.rule[0].extra: unknown key",
    ]);
  });
});
