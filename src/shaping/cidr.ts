import { BlockList, isIP } from "node:net";
import { normalizeIp } from "../net/ip-key.js";

/** A parsed IP network; `contains` matches addresses of its family (IPv4-mapped IPv6 counts as IPv4). */
export interface Cidr {
  readonly text: string;
  readonly prefix: number;
  contains(addr: string): boolean;
}

/** Parses "10.0.0.0/8", "2001:db8::/32" or a bare address (a /32 or /128); undefined if `s` is neither. */
export function parseCidr(s: string): Cidr | undefined {
  const slash = s.indexOf("/");
  const addrPart = slash < 0 ? s : s.slice(0, slash);
  const family = isIP(addrPart);
  if (family === 0) return undefined;
  const max = family === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > max) return undefined;
  const type = family === 4 ? "ipv4" : "ipv6";
  // node:net's BlockList does the bit matching.
  const list = new BlockList();
  list.addSubnet(addrPart, prefix, type);
  return {
    text: `${addrPart}/${prefix}`,
    prefix,
    contains(addr: string): boolean {
      let ip: string;
      try {
        ip = normalizeIp(addr);
      } catch {
        return false;
      }
      const f = isIP(ip);
      return (f === 4 ? "ipv4" : "ipv6") === type && list.check(ip, type);
    },
  };
}
