import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ManualClock } from "../../../src/core/clock.js";
import { DestinationPolicy, type DestinationRule } from "../../../src/features/permissions/destination-policy.js";
import { SpecialAddresses } from "../../../src/features/permissions/special-addresses.js";

const rule = (r: Partial<DestinationRule>): DestinationRule => ({ identities: ["*"], hosts: [], ports: [], cidrs: [], ...r });

/** A resolver answering from a table, counting the names it was asked. */
function table(answers: Record<string, string[]>): { resolve: (h: string) => Promise<string[]>; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    resolve: async (h) => {
      asked.push(h);
      const a = answers[h];
      if (!a) throw Object.assign(new Error(`ENOTFOUND ${h}`), { code: "ENOTFOUND" });
      return a;
    },
  };
}

const PUBLIC = "93.184.215.14";
const PUBLIC6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c";

describe("destination policy: rules", () => {
  const dns = table({
    "api.example.com": [PUBLIC],
    "a.b.example.com": [PUBLIC6],
    "example.com": [PUBLIC],
    "other.org": ["8.8.8.8"],
  });
  const policy = new DestinationPolicy(
    [
      rule({ identities: ["alice"], hosts: ["api.example.com"], ports: [443] }),
      rule({ identities: ["bob", "carol"], hosts: ["*.example.com"], ports: [[8000, 8100], 22] }),
      rule({ identities: ["*"], hosts: ["other.org"] }),
    ],
    { resolve: dns.resolve },
  );

  test("identity, host and port must all match one rule", async () => {
    assert.deepEqual(await policy.decide("alice", "api.example.com", 443), { allowed: true, reason: "allowed by host rule", address: PUBLIC });
    assert.equal((await policy.decide("alice", "api.example.com", 444)).allowed, false);
    assert.equal((await policy.decide("mallory", "api.example.com", 443)).allowed, false);
    assert.equal((await policy.decide("alice", "a.b.example.com", 443)).allowed, false);
  });

  test("names compare case-insensitively, without a trailing dot", async () => {
    assert.equal((await policy.decide("alice", "API.Example.COM.", 443)).allowed, true);
  });

  test("*.example.com matches names below it, not example.com itself", async () => {
    assert.deepEqual(await policy.decide("bob", "a.b.example.com", 8050), { allowed: true, reason: "allowed by host rule", address: PUBLIC6 });
    assert.equal((await policy.decide("carol", "api.example.com", 22)).allowed, true);
    assert.equal((await policy.decide("bob", "example.com", 8050)).allowed, false);
    assert.equal((await policy.decide("bob", "evilexample.com", 8050)).allowed, false);
  });

  test("port ranges are inclusive; no ports listed means any port", async () => {
    assert.equal((await policy.decide("bob", "api.example.com", 8000)).allowed, true);
    assert.equal((await policy.decide("bob", "api.example.com", 8100)).allowed, true);
    assert.equal((await policy.decide("bob", "api.example.com", 8101)).allowed, false);
    assert.equal((await policy.decide("bob", "api.example.com", 7999)).allowed, false);
    assert.equal((await policy.decide("anyone", "other.org", 1)).allowed, true);
    assert.equal((await policy.decide("anyone", "other.org", 65535)).allowed, true);
  });

  test("a name no rule could allow is not even resolved", async () => {
    const before = dns.asked.length;
    const d = await policy.decide("alice", "exfil-data.attacker.net", 443);
    assert.equal(d.allowed, false);
    assert.equal(dns.asked.length, before);
  });

  test("bad input is denied with a reason, never thrown", async () => {
    for (const [host, port] of [
      ["", 443],
      ["bad host", 443],
      ["a..b", 443],
      ["x".repeat(300), 443],
      ["api.example.com", 0],
      ["api.example.com", 65536],
      ["api.example.com", 44.5],
      ["api.example.com", Number.NaN],
      [undefined, 443],
      [{}, 443],
      ["api.example.com", "443"],
    ] as Array<[unknown, unknown]>) {
      const d = await policy.decide("alice", host as string, port as number);
      assert.equal(d.allowed, false, `${String(host).slice(0, 20)}:${String(port)}`);
      assert.match(d.reason, /invalid (host|port)/);
      assert.equal(d.code, "invalid_destination");
    }
    assert.equal((await policy.decide(undefined as never, "api.example.com", 443)).allowed, false);
  });

  test("invalid rules are configuration errors naming the field", () => {
    assert.throws(() => new DestinationPolicy([rule({ hosts: ["bad host"] })]), /rules\[0\]\.hosts/);
    assert.throws(() => new DestinationPolicy([rule({ ports: [0] })]), /rules\[0\]\.ports/);
    assert.throws(() => new DestinationPolicy([rule({}), rule({ ports: [[10, 5]] })]), /rules\[1\]\.ports/);
    assert.throws(() => new DestinationPolicy([rule({ cidrs: ["10.0.0.0/33"] })]), /rules\[0\]\.cidrs/);
    assert.throws(() => new DestinationPolicy([rule({ identities: [""] })]), /rules\[0\]\.identities/);
  });
});

describe("destination policy: SSRF", () => {
  test("special addresses are denied behind any host rule, in every spelling", async () => {
    const policy = new DestinationPolicy([rule({ hosts: ["*"] })], { resolve: table({}).resolve });
    const literals = [
      "127.0.0.1",
      "127.1.2.3",
      "10.0.0.1",
      "172.16.5.4",
      "192.168.1.1",
      "100.64.0.1",
      "169.254.169.254",
      "0.0.0.0",
      "224.0.0.251",
      "255.255.255.255",
      "[::1]",
      "::1",
      "[::]",
      "[::ffff:127.0.0.1]",
      "[::ffff:7f00:1]",
      "[0:0:0:0:0:ffff:a9fe:a9fe]",
      "[fe80::1]",
      "[fd12:3456::1]",
      "[fc00::1]",
      "[ff02::1]",
      "[64:ff9b::a00:1]", // NAT64 of 10.0.0.1
      "[2002:c0a8:101::1]", // 6to4 of 192.168.1.1
    ];
    for (const host of literals) {
      const d = await policy.decide("anyone", host, 80);
      assert.equal(d.allowed, false, host);
      assert.match(d.reason, /^destination address is /, host);
      assert.equal(d.code, "private_address", host);
      assert.ok(!d.reason.includes(host.replace(/[[\]]/g, "")), "reasons do not name the destination");
    }
    assert.deepEqual(await policy.decide("anyone", "8.8.8.8", 53), { allowed: true, reason: "allowed by host rule", address: "8.8.8.8" });
    assert.equal((await policy.decide("anyone", `[${PUBLIC6}]`, 443)).address, PUBLIC6);
    assert.equal((await policy.decide("anyone", "[64:ff9b::808:808]", 443)).allowed, true);
  });

  test("every resolved address is checked, not just the first", async () => {
    const dns = table({ "mixed.example.com": [PUBLIC, "10.1.2.3"], "mapped.example.com": ["::ffff:169.254.169.254"] });
    const policy = new DestinationPolicy([rule({ hosts: ["*.example.com"] })], { resolve: dns.resolve });
    const d = await policy.decide("x", "mixed.example.com", 443);
    assert.equal(d.allowed, false);
    assert.match(d.reason, /private/);
    assert.equal(d.address, undefined);
    assert.match((await policy.decide("x", "mapped.example.com", 443)).reason, /link-local/);
  });

  test("a rule's cidrs open a special address on purpose, and only that one", async () => {
    const dns = table({ "db.internal.example": ["10.20.0.5"], "other.internal.example": ["10.30.0.5"] });
    const policy = new DestinationPolicy(
      [
        rule({ identities: ["ops"], hosts: ["*.internal.example"], cidrs: ["10.20.0.0/16"], ports: [5432] }),
        rule({ identities: ["ops"], cidrs: ["::1/128", "127.0.0.1/32"], ports: [9000] }),
      ],
      { resolve: dns.resolve },
    );
    assert.deepEqual(await policy.decide("ops", "db.internal.example", 5432), { allowed: true, reason: "allowed by host rule", address: "10.20.0.5" });
    assert.equal((await policy.decide("ops", "other.internal.example", 5432)).allowed, false);
    assert.equal((await policy.decide("ops", "10.20.9.9", 5432)).allowed, true);
    assert.equal((await policy.decide("ops", "db.internal.example", 5433)).allowed, false);
    assert.equal((await policy.decide("dev", "db.internal.example", 5432)).allowed, false);
    // A cidr-only rule allows by address, whatever name leads there.
    assert.deepEqual(await policy.decide("ops", "[::1]", 9000), { allowed: true, reason: "allowed by address rule", address: "::1" });
    assert.equal((await policy.decide("ops", "127.0.0.2", 9000)).allowed, false);
  });

  test("the address returned is the one checked (one lookup, no second answer)", async () => {
    let n = 0;
    // A rebinding resolver: public on the first answer, loopback afterwards.
    const resolve = async (): Promise<string[]> => (n++ === 0 ? [PUBLIC] : ["127.0.0.1"]);
    const policy = new DestinationPolicy([rule({ hosts: ["rebind.example.com"] })], { resolve });
    const d = await policy.decide("x", "rebind.example.com", 443);
    assert.deepEqual(d, { allowed: true, reason: "allowed by host rule", address: PUBLIC });
    assert.equal(n, 1);
    assert.equal((await policy.decide("x", "rebind.example.com", 443)).allowed, false);
  });

  test("resolution failures, empty or invalid answers are denials", async () => {
    const policy = new DestinationPolicy([rule({ hosts: ["*"] })], {
      resolve: async (h) => {
        if (h === "empty.example") return [];
        if (h === "junk.example") return ["not-an-ip"];
        if (h === "many.example") return Array.from({ length: 100 }, (_, i) => `8.8.${i}.1`);
        if (h === "sync-throw.example") throw new Error("boom");
        throw new Error("ENOTFOUND");
      },
    });
    assert.match((await policy.decide("x", "missing.example", 443)).reason, /resolution failed/);
    for (const h of ["missing", "empty", "junk", "many", "sync-throw"]) assert.equal((await policy.decide("x", `${h}.example`, 443)).code, "dns", h);
    assert.match((await policy.decide("x", "empty.example", 443)).reason, /no addresses/);
    assert.match((await policy.decide("x", "junk.example", 443)).reason, /invalid address/);
    assert.match((await policy.decide("x", "many.example", 443)).reason, /too many/);
    assert.match((await policy.decide("x", "sync-throw.example", 443)).reason, /resolution failed/);
  });

  test("resolution is bounded by the timeout (manual clock)", async () => {
    const clock = new ManualClock();
    const policy = new DestinationPolicy([rule({ hosts: ["*"] })], {
      resolve: () => new Promise<string[]>(() => {}),
      resolveTimeoutMs: 500,
      clock,
    });
    let settled: { allowed: boolean; reason: string } | undefined;
    const pending = policy.decide("x", "slow.example", 443).then((d) => (settled = d));
    await new Promise<void>((r) => setImmediate(() => r()));
    clock.advance(499);
    await new Promise<void>((r) => setImmediate(() => r()));
    assert.equal(settled, undefined);
    clock.advance(1);
    await pending;
    assert.deepEqual(settled, { allowed: false, code: "dns", reason: "name resolution timed out" });
  });

  test("the system resolver: localhost is loopback and denied; literals need no lookup", async () => {
    const policy = new DestinationPolicy([rule({ hosts: ["*"] })]);
    const d = await policy.decide("x", "localhost", 80);
    assert.equal(d.allowed, false);
    assert.match(d.reason, /loopback/);
    const open = new DestinationPolicy([rule({ hosts: ["*"], cidrs: ["127.0.0.0/8", "::1/128"] })]);
    const ok = await open.decide("x", "localhost", 80);
    assert.equal(ok.allowed, true);
    assert.ok(ok.address === "127.0.0.1" || ok.address === "::1", String(ok.address));
  });

  test("the system resolver: numeric spellings of loopback that getaddrinfo accepts are still loopback", async () => {
    const policy = new DestinationPolicy([rule({ hosts: ["*"] })]);
    for (const host of ["2130706433", "0x7f.1", "127.1", "localhost."]) {
      const d = await policy.decide("x", host, 80);
      assert.equal(d.allowed, false, host);
      assert.match(d.reason, /loopback/, host);
    }
  });
});

describe("special addresses", () => {
  const s = new SpecialAddresses();
  test("classes", () => {
    const cases: Array<[string, string | undefined]> = [
      ["8.8.8.8", undefined],
      [PUBLIC6, undefined],
      ["10.255.255.255", "private"],
      ["172.31.255.255", "private"],
      ["172.32.0.0", undefined],
      ["100.127.255.255", "shared (CGNAT)"],
      ["100.128.0.0", undefined],
      ["::", "unspecified"],
      ["::7f00:1", "ipv4-compatible"],
      ["fe80::1", "link-local"],
      ["febf::1", "link-local"],
      ["fec0::1", "site-local"],
      ["fd00::1", "unique-local"],
      ["ff05::2", "multicast"],
      ["239.255.255.250", "multicast"],
      ["240.0.0.1", "reserved"],
      ["2001:db8::1", "documentation"],
      ["2001::1", "teredo"],
      ["198.18.0.1", "benchmarking"],
      ["64:ff9b::7f00:1", "loopback"],
      ["2002:7f00:1::", "loopback"],
    ];
    for (const [a, cls] of cases) assert.equal(s.classify(a), cls, a);
  });
});
