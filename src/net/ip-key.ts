/** IP address keys: addresses normalised by their bits, and IPv6 clients counted by prefix. */
import { isIPv4, isIPv6 } from "node:net";
import { InvalidArgumentError } from "../core/errors.js";
import { integerAtLeast } from "../core/validate.js";

/**
 * IP address keys. An address is normalised by its bits, not its notation:
 * `::ffff:1.2.3.4`, `::ffff:102:304` and `0:0:0:0:0:ffff:1.2.3.4` are all the
 * IPv4 address 1.2.3.4, and IPv6 is printed in its canonical RFC 5952 form.
 * Addresses can be keyed by prefix (IPv6 /64 by default, IPv4 /32 unless a
 * /24 or other prefix is asked for), so one subnet is one key.
 */
export interface IpKeyOptions {
  /** Prefix length for IPv4 keys (default 32: the address itself). */
  ipv4Prefix?: number;
  /** Prefix length for IPv6 keys (default 64). */
  ipv6Prefix?: number;
}

/** Parses an IPv6 address (no zone) into eight 16-bit groups, or undefined. */
export function parseV6(addr: string): number[] | undefined {
  if (!isIPv6(addr)) return undefined;
  let s = addr;
  const groups: number[] = [];
  const lastColon = s.lastIndexOf(":");
  let tail: number[] = [];
  if (s.includes(".", lastColon)) {
    const v4 = s.slice(lastColon + 1).split(".").map(Number);
    tail = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    s = s.slice(0, lastColon + 1) + "0";
  }
  const [head, rest] = s.split("::") as [string, string | undefined];
  const parse = (part: string): number[] => (part === "" ? [] : part.split(":").map((h) => parseInt(h, 16)));
  let h = parse(head);
  let r = rest === undefined ? [] : parse(rest);
  if (tail.length) {
    if (r.length || rest !== undefined) r = [...r.slice(0, -1), ...tail];
    else h = [...h.slice(0, -1), ...tail];
  }
  if (rest === undefined) groups.push(...h);
  else groups.push(...h, ...new Array<number>(8 - h.length - r.length).fill(0), ...r);
  return groups.length === 8 ? groups : undefined;
}

function formatV6(g: number[]): string {
  // RFC 5952: the longest run (>= 2) of zero groups becomes "::", leftmost on ties; lower-case hex.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

function v4FromGroups(g: number[]): string | undefined {
  // ::ffff:a.b.c.d (IPv4-mapped): 80 zero bits, then 16 one bits.
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`;
  }
  return undefined;
}

/** The canonical form of an address: IPv4 dotted quad (also for IPv4-mapped IPv6), or RFC 5952 IPv6. */
export function normalizeIp(addr: string): string {
  if (typeof addr !== "string") throw new InvalidArgumentError("address", "must be a string");
  const noZone = addr.includes("%") ? addr.slice(0, addr.indexOf("%")) : addr;
  // node:net's isIPv4 accepts no leading zeros, so a dotted quad it accepts is already canonical.
  if (isIPv4(noZone)) return noZone;
  const g = parseV6(noZone);
  if (g === undefined) throw new InvalidArgumentError("address", `not an IP address: ${JSON.stringify(addr).slice(0, 64)}`);
  return v4FromGroups(g) ?? formatV6(g);
}

/** The key of an address: the address itself or its network prefix in CIDR form. */
export function ipKey(addr: string, o: IpKeyOptions = {}): string {
  const v4Prefix = integerAtLeast("ipv4Prefix", o.ipv4Prefix ?? 32, 0);
  const v6Prefix = integerAtLeast("ipv6Prefix", o.ipv6Prefix ?? 64, 0);
  if (v4Prefix > 32) throw new InvalidArgumentError("ipv4Prefix", `must be <= 32, got ${v4Prefix}`);
  if (v6Prefix > 128) throw new InvalidArgumentError("ipv6Prefix", `must be <= 128, got ${v6Prefix}`);
  const ip = normalizeIp(addr);
  if (isIPv4(ip)) {
    if (v4Prefix === 32) return ip;
    // 32-bit arithmetic on the four octets (the guard keys every new connection this way).
    const o4 = ip.split(".");
    const n = ((Number(o4[0]) << 24) | (Number(o4[1]) << 16) | (Number(o4[2]) << 8) | Number(o4[3])) >>> 0;
    const net = v4Prefix === 0 ? 0 : (n & (0xffffffff << (32 - v4Prefix))) >>> 0;
    return `${net >>> 24}.${(net >>> 16) & 255}.${(net >>> 8) & 255}.${net & 255}/${v4Prefix}`;
  }
  if (v6Prefix === 128) return ip;
  const g = parseV6(ip)!;
  for (let i = 0; i < 8; i++) {
    const bitsLeft = v6Prefix - i * 16;
    if (bitsLeft >= 16) continue;
    g[i] = bitsLeft <= 0 ? 0 : g[i]! & ((0xffff << (16 - bitsLeft)) & 0xffff);
  }
  return `${formatV6(g)}/${v6Prefix}`;
}

/** Address family of a normalised address. */
export function ipFamily(addr: string): 4 | 6 {
  return isIPv4(normalizeIp(addr)) ? 4 : 6;
}
