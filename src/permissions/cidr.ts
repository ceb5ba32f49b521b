import { BlockList, isIP } from "node:net";
import { ipKey, normalizeIp } from "../net/ip-key.js";

/**
 * The optional network a permission confines the resolved destination
 * address to. Stored in canonical form ("10.0.0.0/8", "fd00::/8": network
 * address with the host bits cleared, prefix always written), and matched
 * with node:net's BlockList.
 */

/** The canonical form of a CIDR, or undefined if it is not one. */
export function canonicalCidr(s: string): string | undefined {
  const m = /^([^/]+)\/([0-9]{1,3})$/.exec(s.trim());
  if (!m) return undefined;
  const family = isIP(m[1]!);
  if (family === 0) return undefined;
  const prefix = Number(m[2]);
  const ip = normalizeIp(m[1]!);
  const v4 = isIP(ip) === 4;
  if (prefix > (v4 ? 32 : 128)) return undefined;
  // An IPv4-mapped IPv6 network is written as the IPv4 network it denotes.
  if (v4 && family === 6) return undefined;
  const net = v4 ? ipKey(ip, { ipv4Prefix: prefix }) : ipKey(ip, { ipv6Prefix: prefix });
  return net.includes("/") ? net : `${net}/${prefix}`;
}

/** A compiled CIDR, for matching many addresses. */
export class CidrMatcher {
  private readonly list = new BlockList();

  constructor(readonly cidr: string) {
    const [addr, prefix] = cidr.split("/") as [string, string];
    this.list.addSubnet(addr, Number(prefix), isIP(addr) === 4 ? "ipv4" : "ipv6");
  }

  /** Whether `address` lies in the network; anything that is not an IP address does not. */
  contains(address: string): boolean {
    let ip: string;
    try {
      ip = normalizeIp(address);
    } catch {
      return false;
    }
    return this.list.check(ip, isIP(ip) === 4 ? "ipv4" : "ipv6");
  }
}
