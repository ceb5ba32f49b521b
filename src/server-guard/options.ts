/**
 * The options of a server guard, in the library's camelCase, and the guard
 * configuration (the gateway's `[guard]` section) they become. A guard in an
 * application's own server is the gateway's ConnectionGuard with these
 * settings; the defaults suit a library: nothing capped until asked, bans on.
 */
import type { Clock } from "../core/clock.js";
import { InvalidArgumentError } from "../core/errors.js";
import type { Store } from "../stores/store.js";
import { cidrAt } from "../net/cidr.js";
import type { GuardConfig } from "../gateway/config/schema.js";
import type { ServerEventLog } from "./event-log.js";

export interface BanOptions {
  /** Failed authentications from one address within `windowMs` that ban it (default 10). */
  failures?: number;
  windowMs?: number;
  /** First ban (default 10 minutes); each repeat doubles, up to `maxDurationMs` (default 24 hours). */
  durationMs?: number;
  maxDurationMs?: number;
  /** From this many consecutive failures on, the address backs off before each attempt (default 4). */
  backoffAfter?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Count and log bans without enforcing them. */
  shadow?: boolean;
}

export interface LockoutOptions {
  /** Failed authentications for one subject (user name) within `windowMs` that lock it (default 5). */
  failures?: number;
  windowMs?: number;
  /** How long the subject stays locked (default 15 minutes). */
  durationMs?: number;
}

export interface ServerGuardOptions {
  /** Where counts and bans live: a MemoryStore (default) or a shared store (RedisStore) for several processes. */
  store?: Store<boolean>;
  clock?: Clock;
  /** Concurrent connections per address (IPv6: per prefix); 0 = unlimited (default). */
  maxConnectionsPerIp?: number;
  /** Concurrent connections in all; 0 = unlimited (default). */
  maxConnections?: number;
  /** New connections per address: at most `limit` per `windowMs`. */
  connectionRate?: { limit: number; windowMs: number };
  /** Failed authentications on one connection before it is cut (default 10). */
  maxAuthAttempts?: number;
  /** The per-address penalty box: back-off, then bans that refuse at accept and cut live connections; false: off. */
  ban?: BanOptions | false;
  /** Per-subject lockout (a user name failing from many addresses); off unless given. */
  lockout?: LockoutOptions | false;
  /** Addresses (CIDR) exempt from every rule, and addresses always refused. */
  allow?: readonly string[];
  deny?: readonly string[];
  /** IPv6 clients are counted and banned by this prefix (default 64). */
  ipv6Prefix?: number;
  /** Addresses the failed-login table tracks (default 65,536). */
  maxTracked?: number;
  /** The event log (createServerEventLog); none by default. */
  log?: ServerEventLog;
}

/** Large enough to never bind, small enough for every store's integer fields. */
const UNLIMITED = 2 ** 31 - 1;

function count(name: string, v: number | undefined, dflt: number, zeroMeansUnlimited: boolean): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < (zeroMeansUnlimited ? 0 : 1)) {
    throw new InvalidArgumentError(name, `must be an integer >= ${zeroMeansUnlimited ? 0 : 1}, got ${String(v)}`);
  }
  return zeroMeansUnlimited && v === 0 ? UNLIMITED : v;
}

function ms(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw new InvalidArgumentError(name, `must be a positive number of milliseconds, got ${String(v)}`);
  return v;
}

function cidrs(name: string, v: readonly string[] | undefined): string[] {
  const list = [...(v ?? [])];
  list.forEach((c, i) => cidrAt(`${name}[${i}]`, c));
  return list;
}

/** The guard configuration of `o`; throws InvalidArgumentError naming the bad option. */
export function guardConfigOf(o: ServerGuardOptions): GuardConfig {
  const b = o.ban === false ? undefined : (o.ban ?? {});
  const off = o.ban === false;
  const rate = o.connectionRate;
  return {
    max_connections_per_ip: { limit: count("maxConnectionsPerIp", o.maxConnectionsPerIp, UNLIMITED, true), shadow: false },
    max_connections: { limit: count("maxConnections", o.maxConnections, UNLIMITED, true), shadow: false },
    connection_rate: rate === undefined ? undefined : { limit: count("connectionRate.limit", rate.limit, 1, false), window: ms("connectionRate.windowMs", rate.windowMs, 1000), shadow: false },
    prefix_connection_rate: undefined,
    max_auth_attempts: count("maxAuthAttempts", o.maxAuthAttempts, 10, false),
    ban: {
      failures: off ? UNLIMITED : count("ban.failures", b?.failures, 10, false),
      window: ms("ban.windowMs", b?.windowMs, 60_000),
      duration: ms("ban.durationMs", b?.durationMs, 600_000),
      max_duration: ms("ban.maxDurationMs", b?.maxDurationMs, Math.max(86_400_000, b?.durationMs ?? 0)),
      backoff_after: off ? UNLIMITED : count("ban.backoffAfter", b?.backoffAfter, 4, false),
      backoff_base: ms("ban.backoffBaseMs", b?.backoffBaseMs, 25),
      backoff_max: ms("ban.backoffMaxMs", b?.backoffMaxMs, 1000),
      shadow: b?.shadow ?? false,
    },
    max_tracked: count("maxTracked", o.maxTracked, 65_536, false),
    saturation: { duration: 600_000, ipv4_prefix: 24, ipv6_prefix: 48, max_prefixes: 16_384 },
    ban_closes_connections: true,
    ipv6_prefix: count("ipv6Prefix", o.ipv6Prefix, 64, false),
    allow: cidrs("allow", o.allow),
    deny: cidrs("deny", o.deny),
  };
}

/** The lockout box's settings, or undefined when off. */
export function lockoutOf(o: ServerGuardOptions): Required<LockoutOptions> | undefined {
  const l = o.lockout;
  if (l === undefined || l === false) return undefined;
  return {
    failures: count("lockout.failures", l.failures, 5, false),
    windowMs: ms("lockout.windowMs", l.windowMs, 900_000),
    durationMs: ms("lockout.durationMs", l.durationMs, 900_000),
  };
}
