/**
 * IP networks (CIDR blocks): the one parser and matcher of every list of
 * networks in the product (trusted proxies, guard allow/deny lists,
 * destination policy cidrs, permission rows, bandwidth overrides).
 *
 * What parses (see docs/configuration.md, "Addresses and CIDR blocks"):
 * - `address/prefix`, IPv4 with a prefix length 0-32 or IPv6 with 0-128,
 *   the length written in decimal without leading zeros ("/8", not "/08");
 * - a bare address, everywhere: the network of that one address (/32, /128);
 * - IPv4 as node:net accepts it: four decimal octets, no leading zeros;
 *   IPv6 in any RFC 4291 notation, either case, no zone ("%eth0");
 * - the network address must have its host bits clear: "10.0.0.1/8" is
 *   refused (it names the network 10.0.0.0/8, but more likely is a typo for
 *   one address), and the message names the network;
 * - an IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is the IPv4 network
 *   it denotes (`10.0.0.0/8`);
 * - no spaces, nothing before or after.
 * The canonical text is the dotted quad or RFC 5952 IPv6 with the prefix
 * always written (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7/32`); signed
 * permission rows store it.
 *
 * Matching follows node:net's BlockList (a property test holds the two
 * equal): an address written IPv4-mapped is its IPv4 address, and an IPv4
 * address also lies in every IPv6 network that covers its mapped form
 * (`::/0` contains 10.1.2.3). It is not BlockList itself: on Node 20
 * BlockList.check builds a SocketAddress per call, and measured 6.6 µs per
 * IPv4 check against 1.35 µs for masked 32-bit words here, parse included
 * (a shared, loaded machine: the ratio is what counts). For IPv6 the two are
 * on par (4.4 and 5.2 µs), both mostly the parse of the address text. These
 * lists are checked per connection and per forwarding hop.
 */
import { isIP, isIPv4 } from "node:net";
import { InvalidArgumentError } from "../core/errors.js";
import { shown } from "../core/shown.js";
import { ipKey, normalizeIp, parseV6 } from "./ip-key.js";

export type IpFamily = "ipv4" | "ipv6";

/** A parsed network. */
export interface Cidr {
  /** Canonical text: "10.0.0.0/8", "fd00::/8", "192.0.2.7/32". */
  readonly text: string;
  /** The network address, canonical. */
  readonly address: string;
  readonly prefix: number;
  readonly family: IpFamily;
  /** Whether `address` lies in the network; anything that is not an IP address does not. */
  contains(address: string): boolean;
}

/** What a CIDR is, in every message about one that is not. */
export const CIDR_EXPECTED = 'a CIDR block such as "10.0.0.0/8" or "2001:db8::/32", or an address';

/** A parse that failed: why, in a few words (no value in it). */
interface Refusal {
  readonly reason: string;
}

function analyse(v: unknown): Cidr | Refusal {
  if (typeof v !== "string") return { reason: "not a string" };
  const slash = v.indexOf("/");
  const addressText = slash < 0 ? v : v.slice(0, slash);
  if (addressText.includes("%")) return { reason: "a zone is not part of a network" };
  const written = isIP(addressText);
  if (written === 0) return { reason: "not an IP address" };
  const address = normalizeIp(addressText);
  const v4 = isIPv4(address);
  // An IPv4-mapped address is its IPv4 address, and its prefix loses the 96 bits of the mapping.
  const mapped = v4 && written === 6;
  const writtenMax = written === 4 ? 32 : 128;
  let prefix = writtenMax;
  if (slash >= 0) {
    const p = v.slice(slash + 1);
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > writtenMax) return { reason: `prefix length must be a whole number from 0 to ${writtenMax}` };
    prefix = Number(p);
  }
  if (mapped) {
    if (prefix < 96) {
      // The mapping's own bits are host bits here: the network is an IPv6 one.
      return { reason: `host bits are set; the network is ${mappedNetwork(prefix)}` };
    }
    prefix -= 96;
  }
  const net = netText(v4 ? ipKey(address, { ipv4Prefix: prefix }) : ipKey(address, { ipv6Prefix: prefix }), prefix);
  const text = `${address}/${prefix}`;
  if (net !== text) return { reason: `host bits are set; the network is ${net}` };
  return compiled(address, prefix, v4 ? "ipv4" : "ipv6");
}

/** ipKey writes a full-length prefix as the bare address. */
function netText(key: string, prefix: number): string {
  return key.includes("/") ? key : `${key}/${prefix}`;
}

/** The IPv6 network of prefix length `prefix` < 96 around an IPv4-mapped address: 80 zero bits, then 16 one bits. */
function mappedNetwork(prefix: number): string {
  if (prefix <= 80) return `::/${prefix}`;
  return `::${((0xffff << (96 - prefix)) & 0xffff).toString(16)}:0:0/${prefix}`;
}

function compiled(address: string, prefix: number, family: IpFamily): Cidr {
  const range = rangeOf(address, prefix, family);
  return {
    text: `${address}/${prefix}`,
    address,
    prefix,
    family,
    contains(a: string): boolean {
      const w = addressWords(a);
      return w !== undefined && inRange(range, w);
    },
  };
}

/** An address as 32-bit words: one for IPv4, four for IPv6. */
type Words = readonly number[];

/** A network as words and masks of the same shape. */
interface Range {
  readonly words: Words;
  readonly masks: Words;
}

/** The words of a canonical address (a network's). */
function wordsOf(normalized: string): Words {
  if (isIPv4(normalized)) {
    const o = normalized.split(".");
    return [((Number(o[0]) << 24) | (Number(o[1]) << 16) | (Number(o[2]) << 8) | Number(o[3])) >>> 0];
  }
  return addressWords(normalized)!;
}

function maskOf(bits: number): number {
  return bits <= 0 ? 0 : bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
}

function rangeOf(address: string, prefix: number, family: IpFamily): Range {
  const words = wordsOf(address);
  const masks = family === "ipv4" ? [maskOf(prefix)] : [0, 1, 2, 3].map((i) => maskOf(prefix - 32 * i));
  return { words: words.map((w, i) => (w & masks[i]!) >>> 0), masks };
}

/** The IPv4 address as the four words of its IPv4-mapped IPv6 form. */
function mappedWords(v4: number): Words {
  return [0, 0, 0xffff, v4];
}

function inRange(r: Range, a: Words): boolean {
  let w = a;
  if (r.words.length !== a.length) {
    // An IPv6 address (not mapped: those are normalised to IPv4) is in no IPv4 network.
    if (a.length === 4) return false;
    w = mappedWords(a[0]!);
  }
  for (let i = 0; i < w.length; i++) if (((w[i]! & r.masks[i]!) >>> 0) !== r.words[i]) return false;
  return true;
}

/**
 * The words of an address as normalizeIp reads it (a zone is dropped, an
 * IPv4-mapped address is its IPv4 address), or undefined for anything that
 * is not an address. One IPv6 parse, not normalizeIp's parse and format.
 */
function addressWords(a: string): Words | undefined {
  if (typeof a !== "string") return undefined;
  const ip = a.includes("%") ? a.slice(0, a.indexOf("%")) : a;
  if (isIPv4(ip)) return wordsOf(ip);
  const g = parseV6(ip);
  if (g === undefined) return undefined;
  const w = [((g[0]! << 16) | g[1]!) >>> 0, ((g[2]! << 16) | g[3]!) >>> 0, ((g[4]! << 16) | g[5]!) >>> 0, ((g[6]! << 16) | g[7]!) >>> 0];
  return w[0] === 0 && w[1] === 0 && w[2] === 0xffff ? [w[3]!] : w;
}

/** Parses a network by the rules above; undefined if `v` is not one. */
export function parseCidr(v: unknown): Cidr | undefined {
  const r = analyse(v);
  return "reason" in r ? undefined : r;
}

/** The canonical text of a network, or undefined if `v` is not one. */
export function canonicalCidr(v: unknown): string | undefined {
  return parseCidr(v)?.text;
}


/**
 * The one message for a value that is not a network, without the key path
 * (the caller prefixes it): `expected a CIDR block ..., got "10.0.0.0/33"
 * (prefix length must be a whole number from 0 to 32)`. Undefined for a network.
 */
export function cidrProblem(v: unknown): string | undefined {
  const r = analyse(v);
  if (!("reason" in r)) return undefined;
  return `expected ${CIDR_EXPECTED}, got ${shown(v)} (${r.reason})`;
}

/**
 * Whether a string is written like an address or network, rightly or not:
 * digits and dots, or hex digits with a colon (and maybe a zone), with an
 * optional "/...".
 * Where a key may be a network or a name (bandwidth overrides), such a key
 * is a network, and one that does not parse is an error, not a name.
 */
export function looksLikeCidr(s: string): boolean {
  const slash = s.indexOf("/");
  const head = slash < 0 ? s : s.slice(0, slash);
  return /^[0-9.]+$/.test(head) || /^[0-9a-fA-F.]*:[0-9a-fA-F:.]*(?:%.*)?$/.test(head);
}

/** Many networks, matched at once (trusted proxies, allow and deny lists). */
export class CidrList {
  private readonly ranges: Range[];
  readonly size: number;

  constructor(readonly cidrs: readonly Cidr[]) {
    this.ranges = cidrs.map((c) => rangeOf(c.address, c.prefix, c.family));
    this.size = cidrs.length;
  }

  /** Whether `address` lies in any of the networks; anything that is not an IP address does not. */
  contains(address: string): boolean {
    if (this.size === 0) return false;
    const w = addressWords(address);
    return w !== undefined && this.has(w);
  }

  /** contains() in the shape of BlockList.check, for callers that hold the family already (the address says it itself). */
  check(address: string, _family?: IpFamily): boolean {
    return this.contains(address);
  }

  private has(w: Words): boolean {
    for (const r of this.ranges) if (inRange(r, w)) return true;
    return false;
  }
}

/** Parses a network given in code or a file; throws InvalidArgumentError naming `path` with the one message. */
export function cidrAt(path: string, v: unknown): Cidr {
  const c = parseCidr(v);
  if (c === undefined) throw new InvalidArgumentError(path, cidrProblem(v)!);
  return c;
}

/** A CidrList of `values`; a bad entry throws InvalidArgumentError naming `path[i]`. */
export function cidrListAt(path: string, values: readonly unknown[]): CidrList {
  if (!Array.isArray(values)) throw new InvalidArgumentError(path, "must be a list of CIDR blocks or addresses");
  return new CidrList(values.map((v, i) => cidrAt(`${path}[${i}]`, v)));
}

/** A CidrList of networks a config schema already validated (the cidr leaf); throws on anything else. */
export function cidrListOf(texts: readonly string[]): CidrList {
  return cidrListAt("cidrs", texts);
}
