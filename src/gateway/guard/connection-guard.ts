/**
 * Connection admission, applied at accept before any TLS or parsing work so
 * that refusing a flood costs one lookup per connection. Order: deny list,
 * allow list (exempt from everything below), ban, global cap, per-IP cap,
 * per-IP rate, per-prefix rate. State lives in the engine's limiters on one
 * store (and the penalty box), any store:
 *
 * - on a synchronous store (memory) `admit()` answers at once, as cheaply
 *   as a lookup per rule: no promise, no closure beyond the lease release;
 * - on an asynchronous store (Redis, the message store) bans are read first
 *   from the store's local ban cache (no I/O), then the caps and rates of
 *   the connection go out as one store operation, all or nothing (one
 *   script call on Redis: `admitAll`), and `admit()` answers a promise;
 *   the close ends both leases in one call too (`releaseAll`). Concurrency leases carry a
 *   TTL and are renewed while the connection lives, so the slots of a
 *   process that dies free themselves within the TTL.
 *
 * Defensive mode (a full failed-login table) concerns the local table of
 * the memory store; on a shared store the failed-login records live in the
 * store (expiring on their own), so the mode does not start there, and the
 * prefix table stays local to the process.
 */
import { isIPv4 } from "node:net";
import type { Clock } from "../../core/clock.js";
import { ConcurrencyLimiter, type ConcurrencyResult, type Lease } from "../../limiter/concurrency-limiter.js";
import { type CapCheck, type RateCheck, admitTogether, releaseTogether } from "../../limiter/admission.js";
import { createLimiter } from "../../limiter/create-limiter.js";
import type { Decision } from "../../limiter/decision.js";
import { PenaltyBox, type PenaltyBoxOptions } from "../../limiter/penalty-box.js";
import type { RateLimiter } from "../../limiter/rate-limiter.js";
import { ipKey } from "../../net/ip-key.js";
import type { BanEvent, Store } from "../../stores/store.js";
import { cidrListOf, type CidrList } from "../../net/cidr.js";
import type { GuardConfig } from "../config/schema.js";
import { ConnectionRegistry } from "./connection-registry.js";
import { type HeldSlot, LeaseRenewer } from "./lease-renewer.js";
import { thenMaybe } from "../../core/maybe-promise.js";
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
  /** How long until the same connection would pass this rule, where the rule knows (bans, rates); for the log line. */
  retryAfterMs?: number;
}

/** An admitted connection: release it exactly once when the connection ends. */
export interface Admission {
  /** Address key: the address, or its IPv6 prefix; bans and per-IP caps count by it. */
  readonly key: string;
  readonly exempt: boolean;
  release(): void;
}

/** What `admit()` answers: at once on a synchronous store, a promise on an asynchronous one. */
export type AdmitReply = Admission | GuardHit | Promise<Admission | GuardHit>;

/** What `recordAuthFailure()` reports. */
export interface AuthFailure {
  banned: boolean;
  bannedUntil: number;
  failures: number;
  shadow: boolean;
}

/** Default lifetime of a concurrency lease on an asynchronous store (renewed at a third of it while the connection lives). */
export const DEFAULT_LEASE_TTL_MS = 30_000;

export interface ConnectionGuardOptions<S extends boolean = boolean> {
  clock: Clock;
  store: Store<S>;
  /**
   * Lifetime of a concurrency lease on an asynchronous store, renewed while
   * the connection lives (default 30 s). On the memory store leases end
   * only on release. Infinity: no TTL, for a store whose owner releases a
   * dead process's leases itself.
   */
  leaseTtlMs?: number;
  /** A ban placed or lifted anywhere on a shared (asynchronous) store, this process included. */
  onBanEvent?: (e: BanEvent) => void;
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

function penaltyOptions(cfg: GuardConfig, clock: Clock): PenaltyBoxOptions & { clock: Clock; maxKeys: number } {
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

/** Names of the guard's state in the store: fixed, so every process sharing a store shares them. */
const BOX_NAME = "guard.ban";

/** How often a penalty box whose store did not answer at start tries to subscribe again. */
const START_RETRY_MS = 1000;

export class ConnectionGuard<S extends boolean = boolean> {
  readonly registry = new ConnectionRegistry();
  /** True on a synchronous store: every answer is immediate. */
  readonly sync: S;
  private cfg!: GuardConfig;
  private box!: PenaltyBox<boolean>;
  private unsubscribe: (() => void) | undefined;
  private readonly renewer: LeaseRenewer | undefined;
  private startTimer: ReturnType<Clock["setTimer"]> | undefined;
  private leaveRecovery: (() => void) | undefined;
  private closed = false;
  private defense!: DefensiveMode;
  /** The box's eviction count already passed on to the defensive mode. */
  private seenEvictions = 0;
  private readonly sweeper: TableSweeper;
  private perIp!: ConcurrencyLimiter<boolean>;
  private global!: ConcurrencyLimiter<boolean>;
  private rate: RateLimiter<boolean> | undefined;
  private prefixRate: RateLimiter<boolean> | undefined;
  private allow!: CidrList;
  private deny!: CidrList;
  private hasAllow = false;
  private hasDeny = false;
  private readonly refusals = new Map<string, number>();

  constructor(
    cfg: GuardConfig,
    private readonly o: ConnectionGuardOptions<S>,
  ) {
    this.sync = o.store.sync;
    this.sweeper = new TableSweeper(o.clock, () => [this.box, this.defense.prefixes]);
    if (!this.sync) {
      const store = o.store as Store<boolean> & Partial<RecoveryReporting>;
      const shared = o.store as Store<false>;
      this.renewer = new LeaseRenewer(
        o.clock,
        o.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS,
        () => storeAnswers(store),
        (leases) => releaseTogether(shared, leases),
      );
      // Back from an outage: the leases that lapsed and the failure mode's slots are taken again at once.
      const renewer = this.renewer;
      this.leaveRecovery = store.onRecovery?.(() => renewer.renewNow());
    }
    this.configure(cfg);
  }

  /** The store the guard counts in. */
  get store(): Store<S> {
    return this.o.store;
  }

  /** The penalty box: ban listing, manual bans and unbans (its answers are promises on an asynchronous store). */
  get penaltyBox(): PenaltyBox<S> {
    return this.box as PenaltyBox<S>;
  }

  /**
   * On a shared store: subscribes to the fleet's ban events and loads the
   * live bans. Resolves false when the store did not answer within
   * `timeoutMs`; the guard then keeps trying in the background (bans made
   * by this process still hold meanwhile). Nothing to do on the memory store.
   */
  async start(timeoutMs = 2000): Promise<boolean> {
    if (this.sync) return true;
    const box = this.box;
    const ok = await box.start(timeoutMs);
    if (!ok && !this.closed && box === this.box && this.startTimer === undefined) {
      this.startTimer = this.o.clock.setTimer(() => {
        this.startTimer = undefined;
        void this.start(timeoutMs);
      }, START_RETRY_MS);
    }
    return ok;
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
    const { clock } = this.o;
    const store = this.o.store as Store<boolean>;
    const oldBox = this.box as PenaltyBox<boolean> | undefined;
    this.cfg = cfg;
    // A shared store keeps its own time: the limits read it there, so every process agrees (a local monotonic clock would not).
    const shared = this.sync ? { store, clock } : { store };
    // Infinity: leases without a TTL, for a store whose owner frees a dead process's leases itself (the primary of workers).
    const ttl = this.sync || this.renewer!.ttlMs === Infinity ? {} : { leaseTtlMs: this.renewer!.ttlMs };
    this.perIp = new ConcurrencyLimiter({ name: "guard.max_connections_per_ip", limit: cfg.max_connections_per_ip.limit, shadow: cfg.max_connections_per_ip.shadow, ...shared, ...ttl });
    this.global = new ConcurrencyLimiter({ name: "guard.max_connections", limit: cfg.max_connections.limit, shadow: cfg.max_connections.shadow, ...shared, ...ttl });
    const r = cfg.connection_rate;
    this.rate = r ? createLimiter({ name: "guard.connection_rate", algorithm: "gcra", rate: r.limit, periodMs: r.window, burst: r.limit, shadow: r.shadow, ...shared }) : undefined;
    const p = cfg.prefix_connection_rate;
    this.prefixRate = p
      ? createLimiter({ name: "guard.prefix_connection_rate", algorithm: "gcra", rate: p.limit, periodMs: p.window, burst: p.limit, shadow: p.shadow, ...shared })
      : undefined;
    const opts = penaltyOptions(cfg, clock);
    if (!this.sync) {
      // One named box in the shared store: its records and bans carry over any change of parameters.
      const { clock: _c, ...rest } = opts;
      const fresh = new PenaltyBox<boolean>({ ...rest, name: BOX_NAME, store });
      if (oldBox === undefined) this.defense = new DefensiveMode(defensiveSettings(cfg, clock), clock, this.o.onDefensiveMode);
      else this.defense.configure(defensiveSettings(cfg, clock));
      if (oldBox === undefined || JSON.stringify(oldBox.params) !== JSON.stringify(fresh.params) || oldBox.shadow !== fresh.shadow || oldBox.maxKeys !== fresh.maxKeys) {
        this.useSharedBox(fresh, oldBox);
      } else {
        void fresh.close();
      }
    } else if (oldBox === undefined) {
      this.box = new PenaltyBox(opts);
      this.defense = new DefensiveMode(defensiveSettings(cfg, clock), clock, this.o.onDefensiveMode);
    } else {
      const fresh = new PenaltyBox(opts);
      this.defense.configure(defensiveSettings(cfg, clock));
      if (JSON.stringify(oldBox.params) !== JSON.stringify(fresh.params) || oldBox.shadow !== fresh.shadow || oldBox.maxKeys !== fresh.maxKeys) {
        this.observeEvictions();
        const now = oldBox.now();
        for (const b of (oldBox as PenaltyBox<true>).banned()) fresh.ban(b.key, b.bannedUntil - now);
        this.box = fresh;
        this.seenEvictions = 0;
        // A smaller table may have dropped bans while they were copied.
        this.observeEvictions();
      }
    }
    this.allow = cidrListOf(cfg.allow);
    this.deny = cidrListOf(cfg.deny);
    this.hasAllow = cfg.allow.length > 0;
    this.hasDeny = cfg.deny.length > 0;
  }

  /** Swaps in a box on the shared store: subscribes it, then lets the old one go. */
  private useSharedBox(fresh: PenaltyBox<boolean>, old: PenaltyBox<boolean> | undefined): void {
    this.unsubscribe?.();
    this.box = fresh;
    const listener = this.o.onBanEvent;
    this.unsubscribe = listener === undefined ? undefined : fresh.onBanEvent(listener);
    if (old !== undefined) {
      void old.close();
      // A reload: the new box subscribes in the background (the old one has already loaded the bans once).
      void this.start();
    }
  }

  /** The key an address is counted and banned by. */
  keyOf(address: string): string {
    return ipKey(address, { ipv6Prefix: this.cfg.ipv6_prefix });
  }

  /**
   * Admits or refuses a new connection from `address`. Returns the admission,
   * or the rule that refused it: at once on a synchronous store (allocating
   * only the lease on the hot path), as a promise on an asynchronous one.
   */
  admit(address: string): S extends true ? Admission | GuardHit : AdmitReply;
  admit(address: string): AdmitReply {
    if (!this.sync) return this.admitShared(address);
    const key = this.screen(address);
    if (typeof key !== "string") return key;

    const ban = (this.box as PenaltyBox<true>).check(key);
    if (ban.reason === "banned") {
      const hit = this.hit(address, "ban", ban);
      if (hit) return hit;
    }
    const prefixHit = this.prefixBanned(address, key);
    if (prefixHit) return prefixHit;
    const g = (this.global as ConcurrencyLimiter<true>).tryAcquire("*");
    if (!g.decision.allowed || g.decision.shadowed) {
      const hit = this.hit(address, "max_connections", g.decision);
      if (hit) return hit;
    }
    const ip = (this.perIp as ConcurrencyLimiter<true>).tryAcquire(key);
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

  /**
   * The deny and allow lists, which answer before any limit: the refusal of
   * a denied address, the exempt admission of an allowed one, or else the
   * key the address is counted by.
   */
  private screen(address: string): string | Admission | GuardHit {
    const family = isIPv4(address) ? "ipv4" : "ipv6";
    if (this.hasDeny && this.deny.check(address, family)) return this.refused({ limiter: "deny_list", reason: "deny_list", shadow: false });
    const key = this.keyOf(address);
    if (this.hasAllow && this.allow.check(address, family)) return { key, exempt: true, release: () => {} };
    return key;
  }

  /** The refusal of a key whose prefix defensive mode banned, if it is (a shadowed ban only logs). */
  private prefixBanned(address: string, key: string): GuardHit | undefined {
    const prefixBan = this.defense.check(key);
    return prefixBan?.reason === "banned" ? this.hit(address, "ban", prefixBan) : undefined;
  }

  /**
   * The asynchronous store's admission: the ban from the local ban cache
   * (no I/O), then every cap and rate of the connection as one store
   * operation, all or nothing: as on the memory path, a connection refused
   * by a cap is not charged to the rates, and one refused by a rate holds
   * no slot.
   */
  private async admitShared(address: string): Promise<Admission | GuardHit> {
    const key = this.screen(address);
    if (typeof key !== "string") return key;
    const box = this.box as PenaltyBox<false>;
    if (box.isBanned(key)) {
      // The cached ban answers without I/O.
      const ban = await box.check(key);
      if (ban.reason === "banned") {
        const hit = this.hit(address, "ban", ban);
        if (hit) return hit;
      }
    }
    const prefixHit = this.prefixBanned(address, key);
    if (prefixHit) return prefixHit;
    const caps: CapCheck[] = [
      { limiter: this.global as ConcurrencyLimiter<false>, key: "*" },
      { limiter: this.perIp as ConcurrencyLimiter<false>, key },
    ];
    const rates: RateCheck[] = [];
    const rateNames: GuardLimiter[] = [];
    if (this.rate !== undefined) {
      rates.push({ limiter: this.rate as RateLimiter<false>, key });
      rateNames.push("connection_rate");
    }
    const p = this.cfg.prefix_connection_rate;
    if (this.prefixRate !== undefined && p !== undefined) {
      rates.push({ limiter: this.prefixRate as RateLimiter<false>, key: ipKey(address, { ipv4Prefix: p.ipv4_prefix, ipv6Prefix: p.ipv6_prefix }) });
      rateNames.push("prefix_connection_rate");
    }
    // One store operation: every cap and rate, all or nothing (a refused connection holds no slot and is charged no rate).
    const r = await admitTogether(this.o.store as Store<false>, caps, rates);
    const [g, ip] = r.caps;
    let hit = this.sharedHit(address, "max_connections", g?.decision) ?? this.sharedHit(address, "max_connections_per_ip", ip?.decision);
    for (let i = 0; hit === undefined && i < rates.length; i++) hit = this.sharedHit(address, rateNames[i]!, r.rates[i]);
    const leases = [g?.lease, ip?.lease].filter((l) => l !== undefined);
    if (hit !== undefined || this.closed) {
      // Leases of the failure mode (the store did not answer) are local: the store took nothing else.
      releaseTogether(this.o.store as Store<false>, leases);
      return hit ?? this.refused({ limiter: "max_connections", reason: "stopping", shadow: false });
    }
    return this.renewer!.admission(key, this.slots(key, g?.lease, ip?.lease));
  }

  /** The slots an admitted connection holds, each with the way to take it again after an outage. */
  private slots(key: string, g: Lease<false> | undefined, ip: Lease<false> | undefined): HeldSlot[] {
    const out: HeldSlot[] = [];
    if (g !== undefined) out.push({ lease: g, retake: () => retaken((this.global as ConcurrencyLimiter<false>).tryAcquire("*")) });
    if (ip !== undefined) out.push({ lease: ip, retake: () => retaken((this.perIp as ConcurrencyLimiter<false>).tryAcquire(key)) });
    return out;
  }

  /** The refusal of one answered check, if it refuses (shadow hits are counted and reported, not returned). */
  private sharedHit(address: string, limiter: GuardLimiter, d: Decision | undefined): GuardHit | undefined {
    if (d === undefined || (d.allowed && !d.shadowed)) return undefined;
    return this.hit(address, limiter, d);
  }

  private checkRates(address: string, key: string): GuardHit | undefined {
    if (this.rate) {
      const d = (this.rate as RateLimiter<true>).check(key);
      if (!d.allowed || d.shadowed) {
        const hit = this.hit(address, "connection_rate", d);
        if (hit) return hit;
      }
    }
    if (this.prefixRate) {
      const p = this.cfg.prefix_connection_rate!;
      const d = (this.prefixRate as RateLimiter<true>).check(ipKey(address, { ipv4Prefix: p.ipv4_prefix, ipv6Prefix: p.ipv6_prefix }));
      if (!d.allowed || d.shadowed) {
        const hit = this.hit(address, "prefix_connection_rate", d);
        if (hit) return hit;
      }
    }
    return undefined;
  }

  /** A refusal to return, or undefined when the rule only shadows. */
  private hit(address: string, limiter: GuardLimiter, d: Decision): GuardHit | undefined {
    const h: GuardHit = { limiter, reason: d.reason ?? "limited", shadow: d.shadowed, retryAfterMs: d.retryAfterMs };
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
  peek(limiter: string, address: string): Record<string, unknown> | undefined | Promise<Record<string, unknown> | undefined> {
    const key = this.keyOf(address);
    const rate = (d: Decision): Record<string, unknown> => ({ allowed: d.allowed, remaining: d.remaining, limit: d.limit, reset_ms: Math.ceil(d.resetMs), retry_after_ms: Math.ceil(d.retryAfterMs) });
    const held = (n: number | undefined, c: { limit: number; shadow: boolean }): Record<string, unknown> => ({ held: n, limit: c.limit, shadow: c.shadow });
    switch (limiter) {
      case "max_connections_per_ip":
        return thenMaybe(this.perIp.held(key), (n) => held(n, this.cfg.max_connections_per_ip));
      case "max_connections":
        return thenMaybe(this.global.held("*"), (n) => held(n, this.cfg.max_connections));
      case "connection_rate":
        return this.rate ? thenMaybe(this.rate.peek(key), rate) : undefined;
      case "prefix_connection_rate": {
        const p = this.cfg.prefix_connection_rate;
        return this.prefixRate && p ? thenMaybe(this.prefixRate.peek(ipKey(address, { ipv4Prefix: p.ipv4_prefix, ipv6Prefix: p.ipv6_prefix })), rate) : undefined;
      }
      default:
        return undefined;
    }
  }

  /** Whether `key` may try to authenticate now (neither it nor its prefix banned or backing off). */
  authCheck(key: string): S extends true ? Decision : Decision | Promise<Decision>;
  authCheck(key: string): Decision | Promise<Decision> {
    return thenMaybe(this.box.check(key), (d) => (d.allowed ? (this.defense.check(key) ?? d) : d));
  }

  /**
   * Records a failed authentication; reports whether it started a ban of
   * `key`. A newcomer that would push a live record out of a full table
   * starts (or extends) defensive mode, and while the mode lasts the
   * failures of untracked keys count against their prefix instead; a prefix
   * ban that follows is reported to `onPrefixBan`, not here.
   */
  recordAuthFailure(key: string): S extends true ? AuthFailure : AuthFailure | Promise<AuthFailure>;
  recordAuthFailure(key: string): AuthFailure | Promise<AuthFailure> {
    if (!this.sync) {
      // The shared store's records expire on their own: no local table fills, no defensive mode.
      const shadow = this.box.shadow;
      return (this.box as PenaltyBox<false>).recordFailure(key).then((r) => ({ banned: r.banned, bannedUntil: r.bannedUntil, failures: r.streak, shadow }));
    }
    const box = this.box as PenaltyBox<true>;
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

  /** Stops the defensive mode's, the sweeper's and the lease renewal's timers and a shared box's subscription (the gateway is stopping). */
  close(): void {
    this.closed = true;
    this.defense.close();
    this.sweeper.close();
    this.renewer?.close();
    this.leaveRecovery?.();
    this.startTimer?.cancel();
    this.startTimer = undefined;
    this.unsubscribe?.();
    if (!this.sync) void this.box.close();
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

/** What a store that can fail reports of its returns (RedisStore): the unsubscribe is kept for close(). */
interface RecoveryReporting {
  onRecovery(listener: () => void): () => void;
  readonly mode: string;
}

const FAILURE_MODES: ReadonlySet<string> = new Set(["insurance", "open", "closed"]);

/** Whether the store answers itself now (not its failure mode); a store without modes always does. */
function storeAnswers(store: Partial<RecoveryReporting>): boolean {
  return store.mode === undefined || !FAILURE_MODES.has(store.mode);
}

/** The lease of a re-take the store allowed (in shadow mode too, so the slot count stays true). */
async function retaken(r: Promise<ConcurrencyResult<false>>): Promise<Lease<false> | undefined> {
  const { decision, lease } = await r;
  return decision.allowed ? lease : undefined;
}
