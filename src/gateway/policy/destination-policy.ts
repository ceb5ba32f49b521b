import { isIP } from "node:net";
import { type Clock, systemClock } from "../../core/clock.js";
import { InvalidArgumentError } from "../../core/errors.js";
import { normalizeIp } from "../../net/ip-key.js";
import { normalizeHost } from "../../permissions/host-pattern.js";
import { CompiledRule, type DestinationRule } from "./destination-rule.js";
import { type Resolver, resolveBounded, systemResolver } from "./resolve.js";
import { SpecialAddresses } from "./special-addresses.js";

export type { DestinationRule } from "./destination-rule.js";

export interface DestinationPolicyOptions {
  /** Host name to addresses (default: dns.promises.lookup, all addresses). */
  resolve?: (host: string) => Promise<string[]>;
  /** Bound on one resolution (default 2000 ms). */
  resolveTimeoutMs?: number;
  /** Clock for the resolution bound (default: the system clock). */
  clock?: Clock;
}

export interface DestinationDecision {
  allowed: boolean;
  /** Why; never contains the destination or its addresses, so it is safe to log. */
  reason: string;
  /** When allowed: the checked address to connect to (never look the name up again). */
  address?: string;
}

const DEFAULT_RESOLVE_TIMEOUT_MS = 2000;
// More answers than this is not a real service; checking stays bounded.
const MAX_ADDRESSES = 64;

function deny(reason: string): DestinationDecision {
  return { allowed: false, reason };
}

/**
 * Where an identity may connect. A destination is allowed when a rule for
 * the identity and port names its host or its address, and then only if
 * EVERY address the host resolves to is allowed: a special address
 * (private, loopback, link-local, CGNAT, multicast, unspecified, reserved,
 * in any of their IPv6 or IPv4-mapped spellings) only when a matching rule's
 * cidrs contain it. The caller connects to the returned address, the one
 * that was checked, so a second DNS answer cannot redirect it (rebinding).
 * Names that no rule could allow are not even resolved.
 */
export class DestinationPolicy {
  private readonly rules: CompiledRule[];
  private readonly resolve: Resolver;
  private readonly resolveTimeoutMs: number;
  private readonly clock: Clock;
  private readonly special = new SpecialAddresses();

  constructor(rules: DestinationRule[], opts: DestinationPolicyOptions = {}) {
    if (!Array.isArray(rules)) throw new InvalidArgumentError("policy.rules", "must be a list");
    this.rules = rules.map((r, i) => new CompiledRule(r, i));
    this.resolve = opts.resolve ?? systemResolver;
    const t = opts.resolveTimeoutMs ?? DEFAULT_RESOLVE_TIMEOUT_MS;
    if (!Number.isFinite(t) || t <= 0) throw new InvalidArgumentError("resolveTimeoutMs", "must be a positive number");
    this.resolveTimeoutMs = t;
    this.clock = opts.clock ?? systemClock;
  }

  async decide(identity: string, host: string, port: number): Promise<DestinationDecision> {
    try {
      return await this.decideUnsafe(identity, host, port);
    } catch {
      // Nothing above should throw; if it does, the answer is still no.
      return deny("destination could not be checked");
    }
  }

  private async decideUnsafe(identity: string, host: string, port: number): Promise<DestinationDecision> {
    if (typeof identity !== "string") return deny("invalid identity");
    if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) return deny("invalid port");
    const name = typeof host === "string" ? normalizeHost(host) : undefined;
    if (name === undefined) return deny("invalid host");

    const rules = this.rules.filter((r) => r.appliesTo(identity, port));
    if (rules.length === 0) return deny("no rule allows this identity on this port");
    const byName = rules.filter((r) => r.matchesHost(name));
    if (byName.length === 0 && !rules.some((r) => r.hasCidrs)) return deny("no rule allows this destination");

    let addresses: string[];
    if (isIP(name) !== 0) {
      addresses = [name];
    } else {
      const r = await resolveBounded(this.resolve, name, this.resolveTimeoutMs, this.clock);
      if (!r.ok) return deny(r.reason);
      if (r.addresses.length > MAX_ADDRESSES) return deny("name resolved to too many addresses");
      addresses = [];
      for (const a of r.addresses) {
        if (typeof a !== "string" || isIP(a) === 0) return deny("name resolved to an invalid address");
        const n = normalizeIp(a);
        if (!addresses.includes(n)) addresses.push(n);
      }
    }

    for (const a of addresses) {
      const verdict = this.checkAddress(a, rules, byName);
      if (verdict !== undefined) return deny(verdict);
    }
    return { allowed: true, reason: byName.length > 0 ? "allowed by host rule" : "allowed by address rule", address: addresses[0]! };
  }

  /** Undefined when `address` is allowed, else the reason it is not. */
  private checkAddress(address: string, rules: CompiledRule[], byName: CompiledRule[]): string | undefined {
    if (rules.some((r) => r.containsAddress(address))) return undefined;
    const cls = this.special.classify(address);
    if (cls !== undefined) return `destination address is ${cls} and no rule's cidrs contain it`;
    return byName.length > 0 ? undefined : "no rule allows this destination";
  }
}
