import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { canonicalCidr, parseCidr } from "../../../src/net/cidr.js";
import { canonicalHostPattern, hostMatches, normalizeHost } from "../../../src/features/permissions/host-pattern.js";
import { parsePortRange } from "../../../src/features/permissions/port-range.js";
import { parseTimeArg } from "../../../src/features/permissions/time-arg.js";

describe("host patterns", () => {
  const m = (pattern: string, host: string) => hostMatches(canonicalHostPattern(pattern)!, normalizeHost(host)!);

  test("exact names match case-insensitively and ignore a trailing dot", () => {
    assert.equal(m("api.example.com", "API.Example.com."), true);
    assert.equal(m("api.example.com", "api.example.org"), false);
    assert.equal(m("api.example.com", "x.api.example.com"), false);
  });

  test("*.domain matches any depth below the domain but not the domain itself or look-alikes", () => {
    assert.equal(m("*.example.com", "a.example.com"), true);
    assert.equal(m("*.example.com", "a.b.example.com"), true);
    assert.equal(m("*.example.com", "example.com"), false);
    assert.equal(m("*.example.com", "badexample.com"), false);
    assert.equal(m("*.example.com", "example.com.evil.org"), false);
  });

  test("* matches every host and IP literal; IP patterns match only that address", () => {
    assert.equal(m("*", "anything.test"), true);
    assert.equal(m("*", "10.0.0.1"), true);
    assert.equal(m("10.0.0.1", "10.0.0.1"), true);
    assert.equal(m("10.0.0.1", "10.0.0.2"), false);
    assert.equal(m("::1", "[0:0:0:0:0:0:0:1]"), true);
  });

  test("malformed hosts and patterns are refused", () => {
    for (const h of ["", "a..b", "-a.com", "a b.com", "x".repeat(64) + ".com", "a.com/x", "a.com:443"]) assert.equal(normalizeHost(h), undefined, h);
    for (const p of ["*.", "**.a.com", "a.*.com", "*.10.0.0.1", "*a.com"]) assert.equal(canonicalHostPattern(p), undefined, p);
  });
});

describe("port ranges", () => {
  test("single ports and inclusive ranges within 1-65535", () => {
    assert.deepEqual(parsePortRange("443"), { min: 443, max: 443 });
    assert.deepEqual(parsePortRange("8000-8100"), { min: 8000, max: 8100 });
    for (const bad of ["0", "65536", "100-99", "1-", "-5", "a", "1,2", "08000000"]) assert.equal(parsePortRange(bad), undefined, bad);
  });
});

describe("CIDR", () => {
  test("canonical form always writes the prefix; a bare address is its /32 or /128; host bits are refused", () => {
    assert.equal(canonicalCidr("10.0.0.0/8"), "10.0.0.0/8");
    assert.equal(canonicalCidr("10.1.2.3/32"), "10.1.2.3/32");
    assert.equal(canonicalCidr("10.1.2.3"), "10.1.2.3/32");
    assert.equal(canonicalCidr("FD00:0:0::/8"), "fd00::/8");
    assert.equal(canonicalCidr("::ffff:10.0.0.0/104"), "10.0.0.0/8");
    for (const bad of ["10.1.2.3/8", "FD00:0:0::1/8", "10.0.0.0/33", "::/129", "host/8", " 10.0.0.0/8"]) assert.equal(canonicalCidr(bad), undefined, bad);
  });

  test("contains the addresses of its network only, IPv4-mapped IPv6 included", () => {
    const v4 = parseCidr("10.0.0.0/8")!;
    assert.equal(v4.contains("10.200.1.1"), true);
    assert.equal(v4.contains("::ffff:10.1.1.1"), true);
    assert.equal(v4.contains("11.0.0.1"), false);
    assert.equal(v4.contains("not an address"), false);
    const v6 = parseCidr("fd00::/8")!;
    assert.equal(v6.contains("fd12::1"), true);
    assert.equal(v6.contains("fe80::1"), false);
    assert.equal(v6.contains("10.0.0.1"), false);
  });
});

describe("time arguments", () => {
  const now = Date.UTC(2026, 0, 1, 12, 0, 0);
  test("ISO times with a zone, dates, now and offsets", () => {
    assert.equal(parseTimeArg("2026-12-01T00:00:00Z", now), Date.UTC(2026, 11, 1));
    assert.equal(parseTimeArg("2026-12-01T02:00+02:00", now), Date.UTC(2026, 11, 1));
    assert.equal(parseTimeArg("2026-12-01", now), Date.UTC(2026, 11, 1));
    assert.equal(parseTimeArg("now", now), now);
    assert.equal(parseTimeArg("90s", now), now + 90_000);
    assert.equal(parseTimeArg("+30d", now), now + 30 * 86_400_000);
  });
  test("local times without a zone and nonsense are refused", () => {
    for (const bad of ["2026-12-01T00:00", "tomorrow", "30x", "", "2026-13-45"]) assert.equal(parseTimeArg(bad, now), undefined, bad);
  });
});
