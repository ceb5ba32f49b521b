import { isIP } from "node:net";
import { type Clock, systemClock } from "../../core/clock.js";
import { InvalidArgumentError } from "../../core/errors.js";
import { normalizeIp } from "../../net/ip-key.js";
import { normalizeHost } from "./host-pattern.js";
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

/**
 * Why a destination was refused, as one word an operator (and a log filter)
 * can count: no rule allows it (`policy`), its name does not resolve
 * (`dns`), it is a private/loopback/link-local/... address no rule's cidrs
 * contain (`private_address`), the request named no valid host or port
 * (`invalid_destination`), a signed-permission store cannot answer
 * (`policy_unavailable`), or the check itself failed (`error`).
 */
export type DenialCode = "policy" | "dns" | "private_address" | "invalid_destination" | "policy_unavailable" | "error";

export interface DestinationDecision {
  allowed: boolean;
  /** Why; never contains the destination or its addresses, so it is safe to log. */
  reason: string;
  /** When refused: the class of the reason. */
  code?: DenialCode;
  /** When allowed: the checked address to connect to (never look the name up again). */
  address?: string;
}

const DEFAULT_RESOLVE_TIMEOUT_MS = 2000;
// More answers than this is not a real service; checking stays bounded.
const MAX_ADDRESSES = 64;

function deny(code: DenialCode, reason: string): DestinationDecision {
  return { allowed: false, code, reason };
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
      return deny("error", "destination could not be checked");
    }
  }

  private async decideUnsafe(identity: string, host: string, port: number): Promise<DestinationDecision> {
    if (typeof identity !== "string") return deny("invalid_destination", "invalid identity");
    if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) return deny("invalid_destination", "invalid port");
    const name = typeof host === "string" ? normalizeHost(host) : undefined;
    if (name === undefined) return deny("invalid_destination", "invalid host");

    const rules = this.rules.filter((r) => r.appliesTo(identity, port));
    if (rules.length === 0) return deny("policy", "no rule allows this identity on this port");
    const byName = rules.filter((r) => r.matchesHost(name));
    if (byName.length === 0 && !rules.some((r) => r.hasCidrs)) return deny("policy", "no rule allows this destination");

    let addresses: string[];
    if (isIP(name) !== 0) {
      addresses = [name];
    } else {
      const r = await resolveBounded(this.resolve, name, this.resolveTimeoutMs, this.clock);
      if (!r.ok) return deny("dns", r.reason);
      if (r.addresses.length > MAX_ADDRESSES) return deny("dns", "name resolved to too many addresses");
      addresses = [];
      for (const a of r.addresses) {
        if (typeof a !== "string" || isIP(a) === 0) return deny("dns", "name resolved to an invalid address");
        const n = normalizeIp(a);
        if (!addresses.includes(n)) addresses.push(n);
      }
    }

    for (const a of addresses) {
      const verdict = this.checkAddress(a, rules, byName);
      if (verdict !== undefined) return verdict;
    }
    return { allowed: true, reason: byName.length > 0 ? "allowed by host rule" : "allowed by address rule", address: addresses[0]! };
  }

  /** Undefined when `address` is allowed, else the refusal. */
  private checkAddress(address: string, rules: CompiledRule[], byName: CompiledRule[]): DestinationDecision | undefined {
    if (rules.some((r) => r.containsAddress(address))) return undefined;
    const cls = this.special.classify(address);
    if (cls !== undefined) return deny("private_address", `destination address is ${cls} and no rule's cidrs contain it`);
    return byName.length > 0 ? undefined : deny("policy", "no rule allows this destination");
  }
}
