import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BlockList } from "node:net";
import fc from "fast-check";
import { InvalidArgumentError, ipFamily, ipKey, normalizeIp } from "../../src/index.js";

describe("ip keys", () => {
  test("IPv4-mapped IPv6 normalizes to the IPv4 address by its bits, whatever the notation", () => {
    for (const a of ["::ffff:1.2.3.4", "::FFFF:1.2.3.4", "::ffff:102:304", "0:0:0:0:0:ffff:1.2.3.4", "0:0:0:0:0:FFFF:0102:0304", "0::ffff:1.2.3.4"]) {
      assert.equal(normalizeIp(a), "1.2.3.4", a);
    }
    assert.equal(ipFamily("::ffff:10.0.0.1"), 4);
  });

  test("addresses that merely look similar stay IPv6", () => {
    assert.equal(normalizeIp("::1.2.3.4"), "::102:304", "IPv4-compatible is not IPv4-mapped");
    assert.equal(normalizeIp("::ffff:0:1.2.3.4"), "::ffff:0:102:304");
    assert.equal(normalizeIp("1::ffff:1.2.3.4"), "1::ffff:102:304");
  });

  test("IPv6 is printed in its canonical RFC 5952 form", () => {
    assert.equal(normalizeIp("2001:0DB8:0000:0000:0000:0000:0000:0001"), "2001:db8::1");
    assert.equal(normalizeIp("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1", "leftmost of equal zero runs");
    assert.equal(normalizeIp("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1", "a single zero group is not shortened");
    assert.equal(normalizeIp("::"), "::");
    assert.equal(normalizeIp("::1"), "::1");
    assert.equal(normalizeIp("fe80::1%eth0"), "fe80::1", "zone ids are dropped");
    assert.equal(ipFamily("2001:db8::1"), 6);
  });

  test("IPv6 is keyed by /64 by default, or by the prefix asked for", () => {
    assert.equal(ipKey("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    assert.equal(ipKey("2001:db8:1:2:ffff:4:5:6"), ipKey("2001:db8:1:2::9"), "one /64 is one key");
    assert.equal(ipKey("2001:db8:1:2:3:4:5:6", { ipv6Prefix: 48 }), "2001:db8:1::/48");
    assert.equal(ipKey("2001:db8:1:2:3:4:5:6", { ipv6Prefix: 56 }), "2001:db8:1::/56");
    assert.equal(ipKey("2001:db8:1:2ff:3:4:5:6", { ipv6Prefix: 56 }), "2001:db8:1:200::/56");
    assert.equal(ipKey("2001:db8::1", { ipv6Prefix: 128 }), "2001:db8::1");
    assert.equal(ipKey("2001:db8::1", { ipv6Prefix: 0 }), "::/0");
  });

  test("IPv4 is the address itself by default, optionally a /24 (or any prefix)", () => {
    assert.equal(ipKey("192.168.7.9"), "192.168.7.9");
    assert.equal(ipKey("192.168.7.9", { ipv4Prefix: 24 }), "192.168.7.0/24");
    assert.equal(ipKey("::ffff:192.168.7.9", { ipv4Prefix: 24 }), "192.168.7.0/24", "mapped addresses get the IPv4 prefix");
    assert.equal(ipKey("255.255.255.255", { ipv4Prefix: 17 }), "255.255.128.0/17");
    assert.equal(ipKey("10.1.2.3", { ipv4Prefix: 0 }), "0.0.0.0/0");
  });

  test("any IPv4 address and prefix: the key is the network holding the address, with no host bits", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 31 }), (octets, prefix) => {
        const ip = octets.join(".");
        const [net, len] = ipKey(ip, { ipv4Prefix: prefix }).split("/");
        assert.equal(Number(len), prefix);
        const list = new BlockList();
        list.addSubnet(net!, prefix, "ipv4");
        assert.ok(list.check(ip, "ipv4"), `${ip} in ${net}/${prefix}`);
        const n = net!.split(".").reduce((a, x) => a * 256n + BigInt(x), 0n);
        assert.equal(n % (1n << BigInt(32 - prefix)), 0n, "host bits are zero");
      }),
      { numRuns: 500 },
    );
  });

  test("garbage and bad prefixes are typed errors naming the parameter", () => {
    for (const bad of ["", "1.2.3", "1.2.3.256", "01.2.3.4", "::ffff:1.2.3.4.5", "2001:db8::1::2", "hello", "1.2.3.4/24"]) {
      assert.throws(() => normalizeIp(bad), (e: unknown) => e instanceof InvalidArgumentError && e.param === "address", bad);
    }
    assert.throws(() => normalizeIp(7 as unknown as string), InvalidArgumentError);
    assert.throws(() => ipKey("1.2.3.4", { ipv4Prefix: 33 }), (e: unknown) => e instanceof InvalidArgumentError && e.param === "ipv4Prefix");
    assert.throws(() => ipKey("1.2.3.4", { ipv4Prefix: 24.5 }), (e: unknown) => e instanceof InvalidArgumentError && e.param === "ipv4Prefix");
    assert.throws(() => ipKey("::1", { ipv6Prefix: 129 }), (e: unknown) => e instanceof InvalidArgumentError && e.param === "ipv6Prefix");
    assert.throws(() => ipKey("::1", { ipv6Prefix: -1 }), (e: unknown) => e instanceof InvalidArgumentError && e.param === "ipv6Prefix");
  });

  test("a huge input is rejected with a short message", () => {
    const huge = "1".repeat(100_000);
    assert.throws(
      () => normalizeIp(huge),
      (e: unknown) => e instanceof InvalidArgumentError && e.message.length < 200,
    );
  });
});
