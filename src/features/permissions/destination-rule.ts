import { InvalidArgumentError } from "../../core/errors.js";
import { cidrAt, type Cidr } from "../../net/cidr.js";
import { canonicalHostPattern, hostMatches } from "./host-pattern.js";

/**
 * One rule of the destination policy: who (identities, "*" for anyone) may
 * reach what, named either by host (hosts: exact names, "*.example.com" for
 * names below example.com, "*" for any host) or by address (cidrs), on which
 * ports (single ports or inclusive [min, max] ranges; none listed = any).
 * A name match reaches only public addresses; an address in a rule's cidrs
 * is reachable even when it is private (that is how an operator opens a
 * path to an internal service on purpose).
 */
export type DestinationRule = {
  identities: string[];
  hosts: string[];
  ports: Array<number | [number, number]>;
  cidrs: string[];
};

function isPort(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 65535;
}

/** A rule checked and put in canonical form once, at construction. */
export class CompiledRule {
  private readonly anyIdentity: boolean;
  private readonly identities: Set<string>;
  private readonly hosts: string[];
  private readonly ports: Array<readonly [number, number]>;
  private readonly cidrs: Cidr[];

  constructor(rule: DestinationRule, index: number) {
    const at = (field: string): string => `policy.rules[${index}].${field}`;
    if (!rule || typeof rule !== "object") throw new InvalidArgumentError(`policy.rules[${index}]`, "must be an object");
    for (const f of ["identities", "hosts", "ports", "cidrs"] as const) {
      if (!Array.isArray(rule[f])) throw new InvalidArgumentError(at(f), "must be a list");
    }
    for (const id of rule.identities) {
      if (typeof id !== "string" || id.length === 0) throw new InvalidArgumentError(at("identities"), "entries must be non-empty strings");
    }
    this.anyIdentity = rule.identities.includes("*");
    this.identities = new Set(rule.identities);
    this.hosts = rule.hosts.map((h) => {
      const c = typeof h === "string" ? canonicalHostPattern(h.toLowerCase()) : undefined;
      if (c === undefined) throw new InvalidArgumentError(at("hosts"), `not a host pattern: ${JSON.stringify(h)}`);
      return c;
    });
    this.ports = rule.ports.map((p) => {
      const range = typeof p === "number" ? ([p, p] as const) : p;
      if (!Array.isArray(range) || range.length !== 2 || !isPort(range[0]) || !isPort(range[1]) || range[0] > range[1]) {
        throw new InvalidArgumentError(at("ports"), `not a port or [min, max] range: ${JSON.stringify(p)}`);
      }
      return [range[0], range[1]] as const;
    });
    this.cidrs = rule.cidrs.map((c, i) => cidrAt(`${at("cidrs")}[${i}]`, c));
  }

  /** Whether the rule applies to this identity and port at all. */
  appliesTo(identity: string, port: number): boolean {
    if (!this.anyIdentity && !this.identities.has(identity)) return false;
    return this.ports.length === 0 || this.ports.some(([min, max]) => port >= min && port <= max);
  }

  /** Whether canonical host `host` matches one of the host patterns. */
  matchesHost(host: string): boolean {
    return this.hosts.some((p) => hostMatches(p, host));
  }

  get hasCidrs(): boolean {
    return this.cidrs.length > 0;
  }

  /** Whether a rule's cidrs name this (canonical) address. */
  containsAddress(address: string): boolean {
    return this.cidrs.some((m) => m.contains(address));
  }
}
