/**
 * Prometheus metrics of one Gateway: a prom-client Registry owned by this
 * instance (never the global default registry), fed by the gateway's events.
 * Two gateways in one process have two registries and share nothing.
 *
 * Decisions are counted per rule in the guard's order: a connection refused
 * by the per-IP rate was allowed by every rule before it, and an admitted one
 * by every rule that is on. That is what makes "rejections / decisions" a
 * meaningful ratio per limiter.
 */
import type { HealthCounters } from "../stores/store-health.js";
import { isIPv4 } from "node:net";
import type { EventEmitter } from "node:events";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { cidrListOf, type CidrList } from "../net/cidr.js";
import type { Config } from "../gateway/config/schema.js";
import { type Clock, systemClock } from "../core/clock.js";
import type { GatewayEvents } from "../gateway/events.js";
import type { PenaltyBox } from "../limiter/penalty-box.js";
import type { SaturationStats } from "../gateway/guard/connection-guard.js";
import {
  BAN_REASONS,
  type BanReason,
  DIRECTIONS,
  GUARD_LIMITERS,
  KNOWN_REJECTIONS,
  LIMITERS,
  type GuardLimiterName,
  MAX_HTTP_RULE_LABELS,
  MAX_LISTENER_LABELS,
  REASONS,
  STORE_FALLBACK_MODES,
  UNBAN_REASONS,
  oneOfOr,
} from "./labels.js";
import type { ObservabilityEvents } from "../gateway/observability-events.js";
import { VERIFICATION_DROPS } from "../gateway/identity/verification-gate.js";
import { OffenderTracker } from "./offenders.js";
import { registerSnapshotMetrics, type SnapshotSource } from "./snapshot-metrics.js";

/** What metrics need of a gateway (the Gateway class has all of it). */
export interface ObservedGateway extends SnapshotSource {
  readonly events: EventEmitter<GatewayEvents>;
  readonly penaltyBox: PenaltyBox<boolean>;
  readonly config: Config;
  keyOf(address: string): string;
  /** Password checks waiting and running now (absent: reported as 0). */
  readonly verifications?: { queued: number; running: number };
  /** The failed-login tables and defensive mode (absent: those series read 0). */
  saturation?(): SaturationStats;
  /** "memory", "redis", or the failure mode answering now (absent: read as memory). */
  readonly storeState?: string;
  /** A shared store's failovers, recoveries, decisions answered by its failure mode and seconds spent on it (absent on memory). */
  readonly storeCounters?: Readonly<HealthCounters> & { readonly fallbackSeconds?: number };
}

export interface GatewayMetricsOptions {
  /** Time for the offender window (default: the system clock). */
  clock?: Clock;
  /** Node process metrics (CPU, memory, event loop, GC) in the same registry (default true). */
  processMetrics?: boolean;
  /** Most addresses the offender table remembers (default 4096). */
  maxOffenders?: number;
  /** Where expose() takes its text from (default: this registry); a worker serving the admin listener passes every worker's metrics, summed. */
  exposition?: () => Promise<string>;
}

/** Ban reasons remembered per key, for the ban table. */
const MAX_BAN_REASONS = 4096;

/** Windows the "worst single client" gauge is exported for. */
const OFFENDER_WINDOWS = { "5m": 300_000, "1h": 3_600_000 } as const;

export interface MetricsStats {
  /** Cumulative decisions per limiter. */
  limiters: Record<string, { allowed: number; rejected: number }>;
  connectionsActive: number;
  /** Cumulative relayed bytes per direction. */
  relayedBytes: { in: number; out: number };
  /** Admitted connections open now, per listener. */
  connectionsByListener: Record<string, number>;
  /** Cumulative accepted connections per listener. */
  acceptedByListener: Record<string, number>;
  /** Cumulative requests the http listeners refused (429): in all, per listener, and per route and limit. */
  http: { rejections: number; byListener: Record<string, number>; byRoute: Array<{ route: string; limiter: string; count: number }> };
  /** Cumulative time shapers held data back, per direction. */
  throttleSeconds: { in: number; out: number };
  /** Cumulative bans started, per reason. */
  bansByReason: Record<string, number>;
  /** The last configuration reload (undefined: none since start), and the running totals. */
  reloads: { ok: number; failed: number; last: { ok: boolean; at: number; problems: number } | undefined };
}

type Listener<K extends keyof (GatewayEvents & ObservabilityEvents)> = (...args: (GatewayEvents & ObservabilityEvents)[K]) => void;

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly offenders: OffenderTracker;
  readonly decisions: Counter<"limiter" | "result">;
  readonly rejections: Counter<"limiter" | "reason">;
  /** Refusals whose client must wait above log.long_retry_after (bans, deep back-off): worth a look by hand. */
  readonly longRetryAfter: Counter<"limiter">;
  readonly shadowRejections: Counter<"limiter" | "reason">;
  readonly connectionsActive: Gauge<"listener">;
  readonly connections: Counter<"listener" | "result">;
  readonly authAttempts: Counter<"listener" | "result">;
  readonly bansActive: Gauge;
  readonly bans: Counter<"reason">;
  readonly unbans: Counter<"reason">;
  readonly relayedBytes: Counter<"listener" | "direction">;
  readonly throttleSeconds: Counter<"direction">;
  readonly storeLatency: Histogram;
  readonly storeFallback: Gauge<"mode">;
  readonly reloads: Counter<"result">;
  readonly topOffender: Gauge<"window">;
  /** Requests the http listeners' route limits and lockout refused. */
  readonly httpRejections: Counter<"route" | "limiter">;
  /** Requests the admin listener's own rate limit refused (429), by endpoint ("GET /v1/bans", "unmatched"). */
  readonly adminRateLimited: Counter<"endpoint">;
  /** Password checks: waiting and running now, time waited for a slot, and checks dropped unstarted. */
  readonly verificationsQueued: Gauge;
  readonly verificationsRunning: Gauge;
  readonly verificationWait: Histogram<"priority">;
  readonly verificationDrops: Counter<"reason">;
  /** Failed-login tables: entries tracked, live entries dropped, defensive mode (docs/gateway.md, "Saturation"). */
  readonly guardTracked: Gauge<"table">;
  readonly guardLiveEvictions: Counter;
  readonly guardDefensiveMode: Gauge;
  readonly guardDefensiveStarts: Counter;
  private readonly httpLabels = new Set<string>();
  private readonly listenerNames = new Set<string>();
  /** http refusals per listener label, for /v1/stats (the Prometheus series carry route and limit, not the listener). */
  private readonly httpByListener = new Map<string, number>();
  private lastReload: MetricsStats["reloads"]["last"];
  /** Why each recently banned key was banned (bounded; the oldest entry goes first). */
  private readonly banReasons = new Map<string, string>();
  private readonly clock: Clock;
  private readonly detach: Array<() => void> = [];
  private banReason: BanReason | undefined;
  private readonly exposition: (() => Promise<string>) | undefined;
  private lists: { config: Config; allow: CidrList | undefined } | undefined;

  constructor(
    private readonly gateway: ObservedGateway,
    o: GatewayMetricsOptions = {},
  ) {
    const clock = o.clock ?? systemClock;
    this.clock = clock;
    this.exposition = o.exposition;
    const registers = [this.registry];
    this.offenders = new OffenderTracker({ clock, maxKeys: o.maxOffenders });
    this.decisions = new Counter({ name: "portcullis_decisions_total", help: "Admission decisions by limiter and result (allowed, rejected).", labelNames: ["limiter", "result"], registers });
    this.rejections = new Counter({ name: "portcullis_rejections_total", help: "Enforced rejections by limiter and reason.", labelNames: ["limiter", "reason"], registers });
    this.longRetryAfter = new Counter({
      name: "portcullis_long_retry_after_total",
      help: "Refusals whose client must wait longer than log.long_retry_after (default 120 s), by limiter.",
      labelNames: ["limiter"],
      registers,
    });
    this.shadowRejections = new Counter({
      name: "portcullis_shadow_rejections_total",
      help: "Rejections a shadow limit would have made (counted, not enforced).",
      labelNames: ["limiter", "reason"],
      registers,
    });
    this.connectionsActive = new Gauge({ name: "portcullis_connections_active", help: "Admitted connections open now.", labelNames: ["listener"], registers });
    this.connections = new Counter({ name: "portcullis_connections_total", help: "Connections by listener and result (accepted, refused).", labelNames: ["listener", "result"], registers });
    this.authAttempts = new Counter({ name: "portcullis_auth_attempts_total", help: "Authentication attempts by listener and result (accept, reject).", labelNames: ["listener", "result"], registers });
    const { gateway: gw, offenders } = this;
    this.bansActive = new Gauge({
      name: "portcullis_bans_active",
      help: "Address keys banned now.",
      registers,
      async collect() {
        // On a shared store: the whole fleet's bans (one round trip per scrape).
        const rows = await gw.penaltyBox.banned();
        this.set(rows.length);
      },
    });
    this.bans = new Counter({ name: "portcullis_bans_total", help: "Bans started, by reason (auth_failures, manual).", labelNames: ["reason"], registers });
    this.unbans = new Counter({ name: "portcullis_unbans_total", help: "Bans lifted before their end, by reason.", labelNames: ["reason"], registers });
    this.relayedBytes = new Counter({
      name: "portcullis_relayed_bytes_total",
      help: "Bytes relayed, by listener and direction (in: from clients, out: to clients). Totals only.",
      labelNames: ["listener", "direction"],
      registers,
    });
    this.throttleSeconds = new Counter({ name: "portcullis_throttle_seconds_total", help: "Time shapers held data back, by direction.", labelNames: ["direction"], registers });
    this.storeLatency = new Histogram({
      name: "portcullis_store_latency_seconds",
      help: "Latency of store round trips.",
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.storeFallback = new Gauge({ name: "portcullis_store_fallback", help: "1 while the store runs in this fallback mode (insurance, open, closed).", labelNames: ["mode"], registers });
    // A shared store's health, read from the store on scrape (0 on the memory store).
    new Counter({
      name: "portcullis_store_failovers_total",
      help: "Times the shared store stopped answering and its failure mode took over.",
      registers,
      collect() {
        this.reset();
        this.inc(gw.storeCounters?.failovers ?? 0);
      },
    });
    new Counter({
      name: "portcullis_store_fallback_decisions_total",
      help: "Decisions answered by the store's failure mode (insurance, open, closed) instead of the shared store.",
      registers,
      collect() {
        this.reset();
        this.inc(gw.storeCounters?.fallbackDecisions ?? 0);
      },
    });
    new Counter({
      name: "portcullis_store_fallback_seconds_total",
      help: "Time the shared store's failure mode (insurance, open, closed) has answered instead of the store; grows while the store is unavailable.",
      registers,
      collect() {
        this.reset();
        this.inc(gw.storeCounters?.fallbackSeconds ?? 0);
      },
    });
    this.reloads = new Counter({ name: "portcullis_reloads_total", help: "Configuration reloads by result (ok, failed).", labelNames: ["result"], registers });
    this.topOffender = new Gauge({
      name: "portcullis_top_offender_events",
      help: "Offences (refusals, rejected authentications, throttle events) of the single worst client over the window.",
      labelNames: ["window"],
      registers,
      collect() {
        for (const [w, ms] of Object.entries(OFFENDER_WINDOWS)) this.set({ window: w }, offenders.max(ms));
      },
    });
    this.httpRejections = new Counter({
      name: "portcullis_http_rejections_total",
      help: "HTTP requests refused by route limits (limiter: the policy name) or the subject lockout (limiter: lockout).",
      labelNames: ["route", "limiter"],
      registers,
    });
    this.adminRateLimited = new Counter({
      name: "portcullis_admin_rate_limited_total",
      help: "Admin API requests refused by the admin rate limit (429), by endpoint.",
      labelNames: ["endpoint"],
      registers,
    });
    this.verificationsQueued = new Gauge({
      name: "portcullis_auth_verifications_queued",
      help: "Password checks waiting for a slot now.",
      registers,
      collect() {
        this.set(gw.verifications?.queued ?? 0);
      },
    });
    this.verificationsRunning = new Gauge({
      name: "portcullis_auth_verifications_running",
      help: "Password checks (scrypt runs) in progress now.",
      registers,
      collect() {
        this.set(gw.verifications?.running ?? 0);
      },
    });
    this.verificationWait = new Histogram({
      name: "portcullis_auth_verification_wait_seconds",
      help: "Time a password check waited for a slot, by priority class (trusted: recent success or client certificate; unknown).",
      labelNames: ["priority"],
      buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.verificationDrops = new Counter({
      name: "portcullis_auth_verification_drops_total",
      help: "Password checks dropped before they ran, by reason (queue_full, closed, timeout).",
      labelNames: ["reason"],
      registers,
      });
    const saturation = (): SaturationStats | undefined => gw.saturation?.();
    this.guardTracked = new Gauge({
      name: "portcullis_guard_tracked_entries",
      help: "Keys the failed-login tables track now (table: address, or prefix in defensive mode); guard.max_tracked bounds the address table.",
      labelNames: ["table"],
      registers,
      collect() {
        const st = saturation();
        this.set({ table: "address" }, st?.tracked ?? 0);
        this.set({ table: "prefix" }, st?.prefixes ?? 0);
      },
    });
    // Counters fed from the guard's running totals on scrape: each scrape adds what is new since the last one.
    let seenEvictions = 0;
    this.guardLiveEvictions = new Counter({
      name: "portcullis_guard_live_evictions_total",
      help: "Live records (bans, failure streaks) the full failed-login table had to drop.",
      registers,
      collect() {
        const n = saturation()?.liveEvictions ?? 0;
        if (n > seenEvictions) this.inc(n - seenEvictions);
        seenEvictions = Math.max(seenEvictions, n);
      },
    });
    this.guardDefensiveMode = new Gauge({
      name: "portcullis_guard_defensive_mode",
      help: "1 while the guard is in defensive mode (failed-login table saturated: untracked addresses are counted by prefix).",
      registers,
      collect() {
        this.set(saturation()?.active ? 1 : 0);
      },
    });
    let seenStarts = 0;
    this.guardDefensiveStarts = new Counter({
      name: "portcullis_guard_defensive_mode_starts_total",
      help: "Times the guard entered defensive mode.",
      registers,
      collect() {
        const n = saturation()?.starts ?? 0;
        if (n > seenStarts) this.inc(n - seenStarts);
        seenStarts = Math.max(seenStarts, n);
      },
    });
    if (o.processMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      // These are gauges named like counters, which `promtool check metrics` refuses; the per-type gauges beside them carry the same numbers.
      for (const n of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) this.registry.removeSingleMetric(n);
    }
    registerSnapshotMetrics(this.registry, this.gateway, (name) => this.listener(name));
    this.preset();
    this.subscribe();
  }

  /** Runs `fn` (which bans through the gateway) with bans it causes counted under `reason`. */
  withBanReason<T>(reason: BanReason, fn: () => T): T {
    const prev = this.banReason;
    this.banReason = reason;
    try {
      return fn();
    } finally {
      this.banReason = prev;
    }
  }

  /** Why `key` was last banned, when this process saw the ban start (a fleet peer's ban is not known here). */
  banReasonOf(key: string): string | undefined {
    return this.banReasons.get(key);
  }

  /** The Prometheus text exposition. */
  expose(): Promise<string> {
    return this.exposition ? this.exposition() : this.registry.metrics();
  }

  /** Running totals for the dashboard, which turns them into per-second rates. */
  async stats(): Promise<MetricsStats> {
    const byLimiter: MetricsStats["limiters"] = {};
    const row = (l: string) => (byLimiter[l] ??= { allowed: 0, rejected: 0 });
    for (const v of (await this.decisions.get()).values) {
      // Limiters that never decided stay out, so the dashboard draws only what is in use.
      if (v.value === 0) continue;
      const r = row(String(v.labels.limiter));
      if (v.labels.result === "allowed") r.allowed += v.value;
      else if (v.labels.result === "rejected") r.rejected += v.value;
    }
    let active = 0;
    for (const v of (await this.connectionsActive.get()).values) active += v.value;
    const byListener: Record<string, number> = {};
    for (const v of (await this.connectionsActive.get()).values) byListener[String(v.labels.listener)] = (byListener[String(v.labels.listener)] ?? 0) + v.value;
    const accepted: Record<string, number> = {};
    for (const v of (await this.connections.get()).values) {
      if (v.labels.result === "accepted") accepted[String(v.labels.listener)] = (accepted[String(v.labels.listener)] ?? 0) + v.value;
    }
    const bytes = { in: 0, out: 0 };
    for (const v of (await this.relayedBytes.get()).values) bytes[v.labels.direction === "out" ? "out" : "in"] += v.value;
    const byRoute: MetricsStats["http"]["byRoute"] = [];
    let httpTotal = 0;
    for (const v of (await this.httpRejections.get()).values) {
      if (v.value === 0) continue;
      httpTotal += v.value;
      byRoute.push({ route: String(v.labels.route), limiter: String(v.labels.limiter), count: v.value });
    }
    byRoute.sort((a, b) => b.count - a.count || (a.route < b.route ? -1 : a.route > b.route ? 1 : 0));
    const throttle = { in: 0, out: 0 };
    for (const v of (await this.throttleSeconds.get()).values) throttle[v.labels.direction === "out" ? "out" : "in"] += v.value;
    const bansByReason: Record<string, number> = {};
    for (const v of (await this.bans.get()).values) bansByReason[String(v.labels.reason)] = (bansByReason[String(v.labels.reason)] ?? 0) + v.value;
    const reloads = { ok: 0, failed: 0, last: this.lastReload };
    for (const v of (await this.reloads.get()).values) reloads[v.labels.result === "ok" ? "ok" : "failed"] += v.value;
    return {
      limiters: byLimiter,
      connectionsActive: active,
      relayedBytes: bytes,
      connectionsByListener: byListener,
      acceptedByListener: accepted,
      http: { rejections: httpTotal, byListener: Object.fromEntries(this.httpByListener), byRoute },
      throttleSeconds: throttle,
      bansByReason,
      reloads,
    };
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Stops listening to the gateway. The registry keeps its last values. */
  close(): void {
    for (const d of this.detach.splice(0)) d();
  }

  /** Series that must read 0 rather than be absent, so rate() and alerts work from the first scrape. */
  private preset(): void {
    for (const l of LIMITERS) for (const r of ["allowed", "rejected"]) this.decisions.inc({ limiter: l, result: r }, 0);
    for (const [limiter, reason] of KNOWN_REJECTIONS) this.rejections.inc({ limiter, reason }, 0);
    for (const l of ["ban", "connection_rate", "prefix_connection_rate", "auth", "http"]) this.longRetryAfter.inc({ limiter: l }, 0);
    for (const r of BAN_REASONS) this.bans.inc({ reason: r }, 0);
    // A shared store may already be in its failure mode when the metrics attach (Redis down at start).
    const state = this.gateway.storeState;
    for (const m of STORE_FALLBACK_MODES) this.storeFallback.set({ mode: m }, m === state ? 1 : 0);
    for (const d of DIRECTIONS) this.throttleSeconds.inc({ direction: d }, 0);
    for (const r of ["ok", "failed"]) this.reloads.inc({ result: r }, 0);
    for (const r of VERIFICATION_DROPS) this.verificationDrops.inc({ reason: r }, 0);
    for (const l of this.gateway.config.listener) {
      const listener = this.listener(l.name);
      this.connectionsActive.set({ listener }, 0);
      for (const d of DIRECTIONS) this.relayedBytes.inc({ listener, direction: d }, 0);
      for (const r of ["accepted", "refused"]) this.connections.inc({ listener, result: r }, 0);
      if (l.kind === "http") this.httpByListener.set(listener, 0);
    }
  }

  private on<K extends keyof (GatewayEvents & ObservabilityEvents)>(name: K, fn: Listener<K>): void {
    // The extra events travel on the same emitter; only their types live elsewhere.
    const ee = this.gateway.events as unknown as EventEmitter<GatewayEvents & ObservabilityEvents>;
    const safe = ((...args: never[]) => {
      // A metrics bug must never break the gateway emitting the event.
      try {
        (fn as unknown as (...a: never[]) => void)(...args);
      } catch {
        /* counted as nothing */
      }
    }) as never;
    ee.on(name, safe);
    this.detach.push(() => ee.off(name, safe));
  }

  private subscribe(): void {
    this.on("connection", (e) => {
      const listener = this.listener(e.listener);
      this.connections.inc({ listener, result: "accepted" });
      this.connectionsActive.inc({ listener });
      if (this.allowListed(e.remote_addr)) this.decisions.inc({ limiter: "allow_list", result: "allowed" });
      else for (const l of this.guardLimiters()) this.decisions.inc({ limiter: l, result: "allowed" });
    });
    this.on("close", (e) => this.connectionsActive.dec({ listener: this.listener(e.listener) }));
    this.on("refused", (e) => {
      // A rule this version does not know is still counted, under "other" (never under its free-form name).
      const known = (GUARD_LIMITERS as readonly string[]).includes(e.limiter);
      const limiter = known ? e.limiter : "other";
      const reason = oneOfOr(REASONS, e.reason, "other");
      if (e.shadow) {
        this.shadowRejections.inc({ limiter, reason });
        return;
      }
      if (known) {
        for (const l of this.guardLimiters()) {
          if (l === limiter) break;
          this.decisions.inc({ limiter: l, result: "allowed" });
        }
      }
      this.decisions.inc({ limiter, result: "rejected" });
      this.rejections.inc({ limiter, reason });
      if (e.long_retry_after === true) this.longRetryAfter.inc({ limiter });
      this.connections.inc({ listener: this.listener(e.listener), result: "refused" });
      this.offend(e.remote_addr, limiter);
    });
    this.on("auth", (e) => {
      const result = e.result === "accept" ? "accept" : "reject";
      this.authAttempts.inc({ listener: this.listener(e.listener), result });
      this.decisions.inc({ limiter: "auth", result: result === "accept" ? "allowed" : "rejected" });
      if (result === "reject") {
        this.rejections.inc({ limiter: "auth", reason: oneOfOr(REASONS, e.reason, "other") });
        if (e.long_retry_after === true) this.longRetryAfter.inc({ limiter: "auth" });
        this.offend(e.remote_addr, "auth");
      }
    });
    this.on("decision", (e) => {
      this.decisions.inc({ limiter: "destination_policy", result: e.allowed ? "allowed" : "rejected" });
      // The policy's reason is free text (it may name a host): never a label.
      if (!e.allowed) this.rejections.inc({ limiter: "destination_policy", reason: "not_permitted" });
    });
    this.on("ban", (e) => {
      if (e.shadow) return;
      const given = (e as { reason?: unknown }).reason;
      const reason = oneOfOr(BAN_REASONS, given, this.banReason ?? (e.failures > 0 ? "auth_failures" : "manual"));
      this.bans.inc({ reason });
      this.banReasons.delete(e.key);
      this.banReasons.set(e.key, reason);
      if (this.banReasons.size > MAX_BAN_REASONS) this.banReasons.delete(this.banReasons.keys().next().value!);
    });
    this.on("unban", (e) => this.unbans.inc({ reason: oneOfOr(UNBAN_REASONS, e.reason, "other") }));
    this.on("reload", (e) => {
      this.reloads.inc({ result: e.ok ? "ok" : "failed" });
      this.lastReload = { ok: e.ok, at: this.clock.wallNow(), problems: e.problems.length };
      if (e.ok) for (const l of this.gateway.config.listener) this.listener(l.name);
    });
    this.on("bytes", (e) => {
      if (!Number.isFinite(e.bytes) || e.bytes <= 0 || !DIRECTIONS.includes(e.direction)) return;
      this.relayedBytes.inc({ listener: this.listener(e.listener), direction: e.direction }, e.bytes);
    });
    this.on("throttle", (e) => {
      if (!Number.isFinite(e.seconds) || e.seconds < 0 || !DIRECTIONS.includes(e.direction)) return;
      this.throttleSeconds.inc({ direction: e.direction }, e.seconds);
      if (e.remote_addr !== undefined) this.offend(e.remote_addr, "throttle");
    });
    this.on("http_rejection", (e) => {
      // Route and policy names come from the configuration; past a cap (a config churned by reloads) they share "other".
      const pair = `${e.route}\u0000${e.limiter}`;
      const known = this.httpLabels.has(pair) || (this.httpLabels.size < MAX_HTTP_RULE_LABELS && this.httpLabels.add(pair) !== undefined);
      this.httpRejections.inc(known ? { route: e.route, limiter: e.limiter } : { route: "other", limiter: "other" });
      const listener = this.listener(e.listener);
      this.httpByListener.set(listener, (this.httpByListener.get(listener) ?? 0) + 1);
      if (e.long_retry_after === true) this.longRetryAfter.inc({ limiter: "http" });
      // A refused request is an offence of its client, as a refused connection is.
      if (typeof e.remote_addr === "string" && e.remote_addr.length > 0) this.offend(e.remote_addr, "http");
    });
    this.on("store_latency", (e) => {
      if (Number.isFinite(e.seconds) && e.seconds >= 0) this.storeLatency.observe(e.seconds);
    });
    this.on("verification_wait", (e) => {
      if (Number.isFinite(e.seconds) && e.seconds >= 0) this.verificationWait.observe({ priority: e.priority === "trusted" ? "trusted" : "unknown" }, e.seconds);
    });
    this.on("verification_drop", (e) => this.verificationDrops.inc({ reason: oneOfOr(VERIFICATION_DROPS, e.reason, "queue_full") }));
    this.on("store_fallback", (e) => {
      for (const m of STORE_FALLBACK_MODES) this.storeFallback.set({ mode: m }, m === e.mode ? 1 : 0);
    });
  }

  private offend(remote: string, kind: string): void {
    let key = remote;
    try {
      key = this.gateway.keyOf(remote);
    } catch {
      /* not an address: count it as given */
    }
    this.offenders.record(key, kind);
  }

  /** The guard's rules that are on, in the order it applies them. */
  private guardLimiters(): GuardLimiterName[] {
    const g = this.gateway.config.guard;
    return GUARD_LIMITERS.filter((l) => {
      if (l === "deny_list") return g.deny.length > 0;
      if (l === "connection_rate") return g.connection_rate !== undefined;
      if (l === "prefix_connection_rate") return g.prefix_connection_rate !== undefined;
      return true;
    });
  }

  private allowListed(address: string): boolean {
    const config = this.gateway.config;
    if (this.lists?.config !== config) {
      this.lists = { config, allow: config.guard.allow.length > 0 ? cidrListOf(config.guard.allow) : undefined };
    }
    const allow = this.lists.allow;
    if (allow === undefined) return false;
    try {
      return allow.check(address, isIPv4(address) ? "ipv4" : "ipv6");
    } catch {
      return false;
    }
  }

  /** A listener name as a label: the configuration bounds them, and past a cap they share "other". */
  private listener(name: string): string {
    if (this.listenerNames.has(name)) return name;
    if (this.listenerNames.size >= MAX_LISTENER_LABELS || name.length === 0) return "other";
    this.listenerNames.add(name);
    return name;
  }
}
