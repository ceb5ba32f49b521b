/**
 * The CIDR module (src/net/cidr.ts) against node:net's BlockList and against
 * its documented parsing rules, on random networks and addresses: matching
 * agrees with BlockList.check, and parse accepts exactly what the rules say.
 */
import assert from "node:assert/strict";
import { BlockList } from "node:net";
import { describe, test } from "node:test";
import fc from "fast-check";
import { CidrList, cidrProblem, parseCidr } from "../../src/net/cidr.js";
import { ipKey } from "../../src/net/ip-key.js";

const RUNS = 3000;

/** An address value and one way of writing it. */
interface Written {
  text: string;
  family: 4 | 6;
  value: bigint;
}

const v4Text = (n: bigint): string => [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n)).join(".");

function groupsOf(v: bigint): number[] {
  return Array.from({ length: 8 }, (_, i) => Number((v >> BigInt(112 - 16 * i)) & 0xffffn));
}

const MAPPED = 0xffffn << 32n;
const isMapped = (v: bigint): boolean => v >> 32n === 0xffffn;

/** IPv6 text of a value in one of several notations: full, compressed at a random zero run, upper case, dotted tail. */
function v6Text(v: bigint, style: number): string {
  const g = groupsOf(v).map((x) => x.toString(16));
  if (style % 4 === 1) {
    // Compress the first run of zero groups, if any.
    const start = g.indexOf("0");
    if (start >= 0) {
      let end = start;
      while (end < 8 && g[end] === "0") end++;
      return `${g.slice(0, start).join(":")}::${g.slice(end).join(":")}`;
    }
  }
  if (style % 4 === 2) return g.join(":").toUpperCase();
  if (style % 4 === 3) return `${g.slice(0, 6).join(":")}:${v4Text(v & 0xffffffffn)}`;
  return g.join(":");
}

const u32 = fc.bigInt({ min: 0n, max: (1n << 32n) - 1n });
const u128 = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n });
/** IPv6 values, a third of them IPv4-mapped (where the two families meet). */
const v6Value = fc.oneof(u128, u32.map((x) => MAPPED | x), fc.bigInt({ min: 0n, max: (1n << 48n) - 1n }));

const v4Arb: fc.Arbitrary<Written> = u32.map((value) => ({ text: v4Text(value), family: 4, value }));
const v6Arb: fc.Arbitrary<Written> = fc.tuple(v6Value, fc.nat(3)).map(([value, style]) => ({ text: v6Text(value, style), family: 6, value }));
const addressArb = fc.oneof(v4Arb, v6Arb);

const bits = (f: 4 | 6): number => (f === 4 ? 32 : 128);
const maskOf = (f: 4 | 6, prefix: number): bigint => {
  const width = BigInt(bits(f));
  return ((1n << width) - 1n) ^ ((1n << (width - BigInt(prefix))) - 1n);
};

/** A network with its host bits clear, written like an address. */
const networkArb: fc.Arbitrary<{ addr: Written; prefix: number }> = addressArb.chain((a) =>
  fc.integer({ min: 0, max: bits(a.family) }).map((prefix) => {
    const value = a.value & maskOf(a.family, prefix);
    const text = a.family === 4 ? v4Text(value) : v6Text(value, 0);
    return { addr: { text, family: a.family, value }, prefix };
  }),
);

/** An address near a network: its network address with random host bits, so that both outcomes are common. */
function near(net: { addr: Written; prefix: number }, noise: bigint, other: Written, pick: number): Written {
  if (pick % 3 === 2) return other;
  const f = net.addr.family;
  const value = (net.addr.value | (noise & ~maskOf(f, net.prefix))) & ((1n << BigInt(bits(f))) - 1n);
  if (f === 4 && pick % 3 === 1) return { text: `::ffff:${v4Text(value)}`, family: 6, value: MAPPED | value };
  return { text: f === 4 ? v4Text(value) : v6Text(value, pick), family: f, value };
}

function blockList(nets: Array<{ addr: Written; prefix: number }>): BlockList {
  const list = new BlockList();
  for (const n of nets) list.addSubnet(n.addr.text, n.prefix, n.addr.family === 4 ? "ipv4" : "ipv6");
  return list;
}

const checkOf = (list: BlockList, a: Written): boolean => list.check(a.text, a.family === 4 ? "ipv4" : "ipv6");

describe("CIDR matching agrees with node:net's BlockList", () => {
  test("one network: contains(address) is BlockList.check", () => {
    fc.assert(
      fc.property(networkArb, u128, addressArb, fc.nat(5), (net, noise, other, pick) => {
        const c = parseCidr(`${net.addr.text}/${net.prefix}`);
        assert.ok(c, `${net.addr.text}/${net.prefix} parses`);
        const a = near(net, noise, other, pick);
        assert.equal(c.contains(a.text), checkOf(blockList([net]), a), `${c.text} ∋ ${a.text}`);
      }),
      { numRuns: RUNS },
    );
  });

  test("a list of networks: CidrList.contains is BlockList.check", () => {
    fc.assert(
      fc.property(fc.array(networkArb, { maxLength: 6 }), u128, addressArb, fc.nat(5), (nets, noise, other, pick) => {
        const list = new CidrList(nets.map((n) => parseCidr(`${n.addr.text}/${n.prefix}`)!));
        const a = nets.length === 0 ? other : near(nets[pick % nets.length]!, noise, other, pick);
        assert.equal(list.contains(a.text), checkOf(blockList(nets), a), a.text);
      }),
      { numRuns: RUNS },
    );
  });

  test("what is not an address is in no network", () => {
    const all = new CidrList([parseCidr("0.0.0.0/0")!, parseCidr("::/0")!]);
    for (const bad of ["", "1.2.3", "01.2.3.4", "host", "1.2.3.4/8", "::1::2", "[::1]"]) {
      assert.equal(all.contains(bad), false, bad);
      assert.equal(parseCidr("::/0")!.contains(bad), false, bad);
    }
    assert.equal(all.contains("fe80::1%eth0"), true, "an address's zone is dropped, as normalizeIp does");
  });

  test("a prefix key (ipKey) is a canonical network that contains its address", () => {
    fc.assert(
      fc.property(addressArb, fc.integer({ min: 0, max: 32 }), fc.integer({ min: 0, max: 128 }), (a, p4, p6) => {
        const key = ipKey(a.text, { ipv4Prefix: p4, ipv6Prefix: p6 });
        const c = parseCidr(key);
        assert.ok(c, key);
        assert.equal(c.text, key.includes("/") ? key : `${key}/${c.family === "ipv4" ? 32 : 128}`);
        assert.ok(c.contains(a.text), `${key} ∋ ${a.text}`);
      }),
      { numRuns: RUNS },
    );
  });
});

/** The documented rules, written independently of the module: the expected parse of `address[/prefix]`. */
function expected(a: Written | undefined, prefixText: string | undefined): { text: string; prefix: number } | undefined {
  if (a === undefined) return undefined;
  const max = bits(a.family);
  let prefix = max;
  if (prefixText !== undefined) {
    if (!/^(0|[1-9][0-9]*)$/.test(prefixText) || Number(prefixText) > max) return undefined;
    prefix = Number(prefixText);
  }
  if ((a.value & maskOf(a.family, prefix)) !== a.value) return undefined; // host bits set
  if (a.family === 4) return { text: `${v4Text(a.value)}/${prefix}`, prefix };
  if (isMapped(a.value)) return { text: `${v4Text(a.value & 0xffffffffn)}/${prefix - 96}`, prefix: prefix - 96 };
  return { text: "", prefix };
}

/** Address parts that are not addresses, each a rule of the documentation. */
const notAddress = fc.constantFrom("1.2.3", "01.2.3.4", "1.2.3.256", "1.2.3.4.5", "abc", "", " 10.0.0.0", "10.0.0.0 ", "fe80::1%eth0", "::1::2", "[::1]", "1.2.3.4:80", "g::1", "10.0.0.-1");
const prefixArb = fc.oneof(
  fc.integer({ min: -2, max: 140 }).map(String),
  fc.integer({ min: 0, max: 128 }).map((n) => `0${n}`),
  fc.constantFrom("", "x", "8 ", " 8", "+8", "8.0", "1e1", "8/8"),
);

describe("CIDR parsing accepts exactly the documented rules", () => {
  test("random address parts and prefixes", () => {
    fc.assert(
      fc.property(
        fc.oneof({ weight: 4, arbitrary: addressArb.map((a): Written | undefined => a) }, { weight: 1, arbitrary: notAddress.map(() => undefined) }),
        notAddress,
        fc.option(prefixArb, { nil: undefined }),
        fc.boolean(),
        (a, badText, prefixText, tightPrefix) => {
          // Half the valid addresses get a prefix that leaves no host bits of theirs set, so acceptance is common too.
          let p = prefixText;
          if (a !== undefined && tightPrefix && p !== undefined) p = String(bits(a.family));
          const text = `${a === undefined ? badText : a.text}${p === undefined ? "" : `/${p}`}`;
          const want = expected(a, p);
          const got = parseCidr(text);
          assert.equal(got !== undefined, want !== undefined, `${JSON.stringify(text)}: ${got?.text ?? cidrProblem(text)}`);
          assert.equal(cidrProblem(text) === undefined, want !== undefined);
          if (got === undefined || want === undefined) return;
          assert.equal(got.prefix, want.prefix, text);
          if (want.text !== "") assert.equal(got.text, want.text, text);
          assert.equal(parseCidr(got.text)?.text, got.text, "the canonical text parses to itself");
          assert.ok(got.contains(a!.text), `${got.text} contains its own address ${a!.text}`);
        },
      ),
      { numRuns: RUNS },
    );
  });

  test("the examples of the documentation", () => {
    const cases: Array<[string, string | undefined]> = [
      ["10.0.0.0/8", "10.0.0.0/8"],
      ["192.0.2.7", "192.0.2.7/32"],
      ["2001:DB8::/32", "2001:db8::/32"],
      ["2001:db8::1", "2001:db8::1/128"],
      ["::ffff:10.0.0.0/104", "10.0.0.0/8"],
      ["::ffff:192.0.2.7", "192.0.2.7/32"],
      ["::/0", "::/0"],
      ["0.0.0.0/0", "0.0.0.0/0"],
      ["10.0.0.1/8", undefined],
      ["10.0.0.0/08", undefined],
      ["10.0.0.0/33", undefined],
      ["::1/129", undefined],
      ["10.0.0.0/-1", undefined],
      ["1.2.3", undefined],
      ["abc", undefined],
      ["fe80::/64%eth0", undefined],
      ["fe80::%eth0/64", undefined],
      ["::ffff:0:0/80", undefined],
    ];
    for (const [text, canonical] of cases) assert.equal(parseCidr(text)?.text, canonical, text);
    assert.equal(
      cidrProblem("10.0.0.1/8"),
      'expected a CIDR block such as "10.0.0.0/8" or "2001:db8::/32", or an address, got "10.0.0.1/8" (host bits are set; the network is 10.0.0.0/8)',
    );
    assert.match(cidrProblem(8)!, /got 8 \(not a string\)$/);
  });
});
