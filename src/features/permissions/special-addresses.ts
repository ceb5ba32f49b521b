import { BlockList, isIPv4 } from "node:net";
import { normalizeIp } from "../../net/ip-key.js";

/**
 * Addresses an egress gateway must not reach by accident (SSRF): the
 * gateway's own host, private networks behind it, and anything that is not
 * a unicast global address. IPv4-mapped IPv6 is checked as the IPv4 address
 * it is (normalizeIp), and the IPv4 address inside a NAT64 or 6to4 address is
 * checked as well, because that is where the packets end up.
 */
export type AddressClass =
  | "unspecified"
  | "loopback"
  | "private"
  | "shared (CGNAT)"
  | "link-local"
  | "multicast"
  | "broadcast"
  | "reserved"
  | "documentation"
  | "benchmarking"
  | "unique-local"
  | "site-local"
  | "ipv4-compatible"
  | "teredo";

const V4: ReadonlyArray<readonly [AddressClass, string, number]> = [
  ["unspecified", "0.0.0.0", 8],
  ["private", "10.0.0.0", 8],
  ["shared (CGNAT)", "100.64.0.0", 10],
  ["loopback", "127.0.0.0", 8],
  ["link-local", "169.254.0.0", 16],
  ["private", "172.16.0.0", 12],
  ["reserved", "192.0.0.0", 24],
  ["documentation", "192.0.2.0", 24],
  ["reserved", "192.88.99.0", 24],
  ["private", "192.168.0.0", 16],
  ["benchmarking", "198.18.0.0", 15],
  ["documentation", "198.51.100.0", 24],
  ["documentation", "203.0.113.0", 24],
  ["multicast", "224.0.0.0", 4],
  ["reserved", "240.0.0.0", 4],
  ["broadcast", "255.255.255.255", 32],
];

const V6: ReadonlyArray<readonly [AddressClass, string, number]> = [
  ["unspecified", "::", 128],
  ["loopback", "::1", 128],
  // ::a.b.c.d, deprecated IPv4-compatible addresses (::/128 and ::1 are matched above first).
  ["ipv4-compatible", "::", 96],
  ["reserved", "64:ff9b:1::", 48],
  ["reserved", "100::", 64],
  ["teredo", "2001::", 32],
  ["reserved", "2001::", 23],
  ["documentation", "2001:db8::", 32],
  ["documentation", "3fff::", 20],
  ["unique-local", "fc00::", 7],
  ["link-local", "fe80::", 10],
  ["site-local", "fec0::", 10],
  ["multicast", "ff00::", 8],
];

function groups(v6: string): number[] {
  const [head, tail] = v6.split("::") as [string, string | undefined];
  const h = head === "" ? [] : head.split(":").map((x) => parseInt(x, 16));
  const t = tail === undefined || tail === "" ? [] : tail.split(":").map((x) => parseInt(x, 16));
  return tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
}

function v4Of(hi: number, lo: number): string {
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** Classifies addresses; one instance holds its own compiled lists. */
export class SpecialAddresses {
  private readonly v4: Array<[AddressClass, BlockList]>;
  private readonly v6: Array<[AddressClass, BlockList]>;

  constructor() {
    const compile = (ranges: typeof V4, family: "ipv4" | "ipv6"): Array<[AddressClass, BlockList]> =>
      ranges.map(([cls, net, prefix]) => {
        const list = new BlockList();
        list.addSubnet(net, prefix, family);
        return [cls, list];
      });
    this.v4 = compile(V4, "ipv4");
    this.v6 = compile(V6, "ipv6");
  }

  /** The class of a special address, or undefined for a global unicast one. Throws on a non-address. */
  classify(address: string): AddressClass | undefined {
    const ip = normalizeIp(address);
    if (isIPv4(ip)) return this.v4.find(([, l]) => l.check(ip, "ipv4"))?.[0];
    const cls = this.v6.find(([, l]) => l.check(ip, "ipv6"))?.[0];
    if (cls !== undefined) return cls;
    const g = groups(ip);
    // NAT64 well-known prefix 64:ff9b::/96: the last 32 bits are the IPv4 destination.
    if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0) {
      return this.classify(v4Of(g[6]!, g[7]!));
    }
    // 6to4 2002::/16: bits 16-47 are the IPv4 relay.
    if (g[0] === 0x2002) return this.classify(v4Of(g[1]!, g[2]!));
    return undefined;
  }
}
