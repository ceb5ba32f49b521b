/**
 * Connection admission, applied at accept before any TLS or parsing work so
 * that refusing a flood costs one lookup per connection. Order: deny list,
 * allow list (exempt from everything below), ban, global cap, per-IP cap,
 * per-IP rate, per-prefix rate. State lives in the engine's limiters on one
 * store (and the penalty box), so the same checks can later run against a
 * shared store when more than one process accepts.
 */
import type { BlockList } from "node:net";
import { isIPv4 } from "node:net";
import type { Clock } from "../../core/clock.js";
import { ConcurrencyLimiter, type Lease } from "../../limiter/concurrency-limiter.js";
import { createLimiter } from "../../limiter/create-limiter.js";
import type { Decision } from "../../limiter/decision.js";
import { PenaltyBox, type PenaltyBoxOptions } from "../../limiter/penalty-box.js";
import type { RateLimiter } from "../../limiter/rate-limiter.js";
import { ipKey } from "../../net/ip-key.js";
import type { MemoryStore } from "../../stores/memory-store.js";
import { blockListOf } from "../../config/leaves.js";
import type { GuardConfig } from "../config/schema.js";
import { ConnectionRegistry } from "./connection-registry.js";
import { TableSweeper } from "./table-sweeper.js";
import { DefensiveMode, type DefensiveModeSettings, type DefensiveModeStats, type DefensiveTransition } from "./defensive-mode.js";

/** Which rule refused (or would have refused, in shadow mode) a connection. */
export type GuardLimiter =
  | "deny_list"
  | "ban"
  | "max_connections"
  | "max_connections_per_ip"
  | "connection_rate"
  | "prefix_connection_rate";

export interface GuardHit {
  limiter: GuardLimiter;
  /** The engine's reason (concurrency_limit, rate_limit, banned, throttled) or "deny_list". */
  reason: string;
  shadow: boolean;
}

/** An admitted connection: release it exactly once when the connection ends. */
export interface Admission {
  /** Address key: the address, or its IPv6 prefix; bans and per-IP caps count by it. */
  readonly key: string;
  readonly exempt: boolean;
  release(): void;
}

export interface ConnectionGuardOptions {
  clock: Clock;
  store: MemoryStore;
  /** A shadow rule matched: counted and logged by the caller, not enforced. */
  onShadow?: (address: string, hit: GuardHit) => void;
  /** Defensive mode started or ended (docs/gateway.md, "Saturation"). */
  onDefensiveMode?: (t: DefensiveTransition) => void;
  /** A network prefix was banned by failures counted in defensive mode (the caller logs and announces it). */
  onPrefixBan?: (prefix: string, bannedUntil: number, failures: number, shadow: boolean) => void;
}

/** What the guard tracks for failed logins, for metrics. */
export interface SaturationStats extends DefensiveModeStats {
  /** Address keys in the failed-login table now, and its size. */
  tracked: number;
  maxTracked: number;
}

function penaltyOptions(cfg: GuardConfig, clock: Clock): PenaltyBoxOptions {
  const b = cfg.ban;
  return {
    clock,
    maxKeys: cfg.max_tracked,
    shadow: b.shadow,
    banFailures: b.failures,
    banWindowMs: b.window,
    banDurationMs: b.duration,
    banMaxMs: b.max_duration,
    banMultiplier: 2,
    throttleAfter: b.backoff_after,
    backoffBaseMs: b.backoff_base,
    backoffMaxMs: b.backoff_max,
    // Keep a record at least as long as a maximal ban plus its counting window, so repeat offenders escalate.
    retentionMs: Math.max(b.window, b.max_duration) + b.window,
  };
}

function defensiveSettings(cfg: GuardConfig, clock: Clock): DefensiveModeSettings {
  const s = cfg.saturation;
  const { clock: _clock, maxKeys: _maxKeys, ...penalty } = penaltyOptions(cfg, clock);
  return { durationMs: s.duration, ipv4Prefix: s.ipv4_prefix, ipv6Prefix: s.ipv6_prefix, maxPrefixes: s.max_prefixes, penalty };
}

const NO_LEASE: Lease = { key: "", id: 0, release: () => {}, renew: () => false };

export class ConnectionGuard {
  readonly registry = new ConnectionRegistry();
  private cfg!: GuardConfig;
  private box!: PenaltyBox;
  private defense!: DefensiveMode;
  /** The box's eviction count already passed on to the defensive mode. */
  private seenEvictions = 0;
  private readonly sweeper: TableSweeper;
  private perIp!: ConcurrencyLimiter;
  private global!: ConcurrencyLimiter;
  private rate: RateLimiter | undefined;
  private prefixRate: RateLimiter | undefined;
  private allow!: BlockList;
  private deny!: BlockList;
  private hasAllow = false;
  private hasDeny = false;
  private readonly refusals = new Map<string, number>();

  constructor(
    cfg: GuardConfig,
    private readonly o: ConnectionGuardOptions,
  ) {
    this.sweeper = new TableSweeper(o.clock, () => [this.box, this.defense.prefixes]);
    this.configure(cfg);
  }

  /** The penalty box: ban listing, manual bans and unbans. */
  get penaltyBox(): PenaltyBox {
    return this.box;
  }

  /** Defensive mode: the prefix table and whether the mode is on. */
  get defensiveMode(): DefensiveMode {
    return this.defense;
  }

  get config(): GuardConfig {
    return this.cfg;
  }

  /** Refusals so far by `limiter:reason` (bounded: a fixed set of rules and reasons). */
  refusalCounts(): ReadonlyMap<string, number> {
    return this.refusals;
  }

  /**
   * Applies a new guard configuration. Limiters keep their names on the same
   * store, so live counts (connections held, rate state) carry over; the
   * penalty box is kept when its parameters are unchanged and otherwise
   * rebuilt with every live ban copied over.
   */
  configure(cfg: GuardConfig): void {
    const { clock, store } = this.o;
    const oldBox = this.box as PenaltyBox | undefined;
    this.cfg = cfg;
    this.perIp = new ConcurrencyLimiter({ name: "guard.max_connections_per_ip", limit: cfg.max_connections_per_ip.limit, shadow: cfg.max_connections_per_ip.shadow, store, clock });
    this.global = new ConcurrencyLimiter({ name: "guard.max_connections", limit: cfg.max_connections.limit, shadow: cfg.max_connections.shadow, store, clock });
    const r = cfg.connection_rate;
    this.rate = r ? createLimiter({ name: "guard.connection_rate", algorithm: "gcra", rate: r.limit, periodMs: r.window, burst: r.limit, shadow: r.shadow, store, clock }) : undefined;
    const p = cfg.prefix_connection_rate;
    this.prefixRate = p
      ? createLimiter({ name: "guard.prefix_connection_rate", algorithm: "gcra", rate: p.limit, periodMs: p.window, burst: p.limit, shadow: p.shadow, store, clock })
      : undefined;
    const opts = penaltyOptions(cfg, clock);
    const fresh = new PenaltyBox(opts);
    if (oldBox === undefined) {
      this.box = fresh;
      this.defense = new DefensiveMode(defensiveSettings(cfg, clock), clock, this.o.onDefensiveMode);
    } else {
      this.defense.configure(defensiveSettings(cfg, clock));
      if (JSON.stringify(oldBox.params) !== JSON.stringify(fresh.params) || oldBox.shadow !== fresh.shadow || oldBox.maxKeys !== fresh.maxKeys) {
        this.observeEvictions();
        const now = oldBox.now();
        for (const b of oldBox.banned()) fresh.ban(b.key, b.bannedUntil - now);
        this.box = fresh;
        this.seenEvictions = 0;
        // A smaller table may have dropped bans while they were copied.
        this.observeEvictions();
      }
    }
    this.allow = blockListOf(cfg.allow);
    this.deny = blockListOf(cfg.deny);
    this.hasAllow = cfg.allow.length > 0;
    this.hasDeny = cfg.deny.length > 0;
  }

  /** The key an address is counted and banned by. */
  keyOf(address: string): string {
    return ipKey(address, { ipv6Prefix: this.cfg.ipv6_prefix });
  }

  /**
   * Admits or refuses a new connection from `address`. Returns the admission,
   * or the rule that refused it. Allocates only the lease on the hot path.
   */
  admit(address: string): Admission | GuardHit {
    const family = isIPv4(address) ? "ipv4" : "ipv6";
    if (this.hasDeny && this.deny.check(address, family)) return this.refused({ limiter: "deny_list", reason: "deny_list", shadow: false });
    const key = this.keyOf(address);
    if (this.hasAllow && this.allow.check(address, family)) return { key, exempt: true, release: () => {} };

    const ban = this.box.check(key);
    if (ban.reason === "banned") {
      const hit = this.hit(address, "ban", ban);
      if (hit) return hit;
    }
    const prefixBan = this.defense.check(key);
    if (prefixBan?.reason === "banned") {
      const hit = this.hit(address, "ban", prefixBan);
      if (hit) return hit;
    }
    const g = this.global.tryAcquire("*");
    if (!g.decision.allowed || g.decision.shadowed) {
      const hit = this.hit(address, "max_connections", g.decision);
      if (hit) return hit;
    }
    const ip = this.perIp.tryAcquire(key);
    if (!ip.decision.allowed || ip.decision.shadowed) {
      const hit = this.hit(address, "max_connections_per_ip", ip.decision);
      if (hit) {
        g.lease?.release();
        return hit;
      }
    }
    const rateHit = this.checkRates(address, key);
    if (rateHit) {
      g.lease?.release();
      ip.lease?.release();
      return rateHit;
    }
    const gl = g.lease ?? NO_LEASE;
    const il = ip.lease ?? NO_LEASE;
    return {
      key,
      exempt: false,
      release: () => {
        gl.release();
        il.release();
      },
    };
  }

  private checkRates(address: string, key: string): GuardHit | undefined {
    if (this.rate) {
      const d = this.rate.check(key);
      if (!d.allowed || d.shadowed) {
        const hit = this.hit(address, "connection_rate", d);
        if (hit) return hit;
      }
    }
    if (this.prefixRate) {
      const p = this.cfg.prefix_connection_rate!;
      const d = this.prefixRate.check(ipKey(address, { ipv4Prefix: p.ipv4_prefix, ipv6Prefix: p.ipv6_prefix }));
      if (!d.allowed || d.shadowed) {
        const hit = this.hit(address, "prefix_connection_rate", d);
        if (hit) return hit;
      }
    }
    return undefined;
  }

  /** A refusal to return, or undefined when the rule only shadows. */
  private hit(address: string, limiter: GuardLimiter, d: Decision): GuardHit | undefined {
    const h: GuardHit = { limiter, reason: d.reason ?? "limited", shadow: d.shadowed };
    if (d.shadowed) {
      this.count(h);
      this.o.onShadow?.(address, h);
      return undefined;
    }
    return this.refused(h);
  }

  private refused(h: GuardHit): GuardHit {
    this.count(h);
    return h;
  }

  private count(h: GuardHit): void {
    const k = `${h.limiter}:${h.reason}${h.shadow ? ":shadow" : ""}`;
    this.refusals.set(k, (this.refusals.get(k) ?? 0) + 1);
  }

  /**
   * The state of `address` under one of the guard's limiters, read without
   * consuming anything (for the admin API). Undefined for a limiter that is
   * not on.
   */
  peek(limiter: string, address: string): Record<string, unknown> | undefined {
    const key = this.keyOf(address);
    const rate = (d: Decision): Record<string, unknown> => ({ allowed: d.allowed, remaining: d.remaining, limit: d.limit, reset_ms: Math.ceil(d.resetMs), retry_after_ms: Math.ceil(d.retryAfterMs) });
    switch (limiter) {
      case "max_connections_per_ip":
        return { held: this.perIp.held(key), limit: this.cfg.max_connections_per_ip.limit, shadow: this.cfg.max_connections_per_ip.shadow };
      case "max_connections":
        return { held: this.global.held("*"), limit: this.cfg.max_connections.limit, shadow: this.cfg.max_connections.shadow };
      case "connection_rate":
        return this.rate ? rate(this.rate.peek(key)) : undefined;
      case "prefix_connection_rate": {
        const p = this.cfg.prefix_connection_rate;
        return this.prefixRate && p ? rate(this.prefixRate.peek(ipKey(address, { ipv4Prefix: p.ipv4_prefix, ipv6Prefix: p.ipv6_prefix }))) : undefined;
      }
      default:
        return undefined;
    }
  }

  /** Whether `key` may try to authenticate now (neither it nor its prefix banned or backing off). */
  authCheck(key: string): Decision {
    const d = this.box.check(key);
    if (!d.allowed) return d;
    return this.defense.check(key) ?? d;
  }

  /**
   * Records a failed authentication; reports whether it started a ban of
   * `key`. A newcomer that would push a live record out of a full table
   * starts (or extends) defensive mode, and while the mode lasts the
   * failures of untracked keys count against their prefix instead; a prefix
   * ban that follows is reported to `onPrefixBan`, not here.
   */
  recordAuthFailure(key: string): { banned: boolean; bannedUntil: number; failures: number; shadow: boolean } {
    const box = this.box;
    this.sweeper.arm();
    if (!box.has(key)) {
      const full = box.saturated;
      if (full) this.defense.trigger("table_full");
      if (full || this.defense.active) {
        const p = this.defense.recordFailure(key);
        if (p.banned) this.o.onPrefixBan?.(p.key, p.bannedUntil, p.streak, this.defense.prefixes.shadow);
        return { banned: false, bannedUntil: -Infinity, failures: p.streak, shadow: box.shadow };
      }
    }
    const r = box.recordFailure(key);
    this.observeEvictions();
    return { banned: r.banned, bannedUntil: r.bannedUntil, failures: r.streak, shadow: box.shadow };
  }

  /** Failed-login table, prefix table and defensive mode, for metrics. */
  saturation(): SaturationStats {
    this.observeEvictions();
    return { ...this.defense.stats(), tracked: this.box.size, maxTracked: this.box.maxKeys };
  }

  /** Stops the defensive mode's and the sweeper's timers (the gateway is stopping). */
  close(): void {
    this.defense.close();
    this.sweeper.close();
  }

  /** Passes live evictions of the address table (from failures, manual bans or a reload) to the defensive mode. */
  private observeEvictions(): void {
    const n = this.box.evictions;
    if (n > this.seenEvictions) {
      this.defense.noteEvictions(n - this.seenEvictions);
      this.seenEvictions = n;
    }
  }
}
