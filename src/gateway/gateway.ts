/**
 * The gateway: listeners, the connection guard, identities, the destination
 * policy and the log, all owned by one instance. Two gateways in one process
 * share nothing. start() binds every listener, reload() applies a new
 * configuration without dropping connections, stop() closes everything.
 *
 * What an admin API or metrics need is exposed here: `events` (connections,
 * refusals, auth results, policy decisions, bans), `penaltyBox` (ban listing),
 * `ban()` / `unban()`, and `refusalCounts()`.
 *
 * Where it counts is the `[store]` section's: this process's memory, or a
 * Redis shared by a fleet of gateways (`store`, `storeState`). On a shared
 * store the answers about bans are promises, and a ban placed by any
 * gateway of the fleet cuts the connections of its address here too.
 */
import { EventEmitter } from "node:events";
import { type Clock, TurnCachedClock, systemClock } from "../core/clock.js";
import type { Rng } from "../core/random.js";
import type { Config } from "./config/schema.js";
import type { PenaltyBox } from "../limiter/penalty-box.js";
import type { BanEvent, Store } from "../stores/store.js";
import type { HealthCounters } from "../stores/store-health.js";
import { GatewayBandwidth } from "../features/bandwidth/gateway-bandwidth.js";
import type { GatewayContext } from "./context.js";
import type { GatewayEvents } from "./events.js";
import { ConnectionGuard, type SaturationStats } from "./guard/connection-guard.js";
import { UserTable } from "./identity/basic-auth.js";
import { verifierSettings } from "./identity/config-schema.js";
import { PasswordVerifier } from "./identity/password-verifier.js";
import { Listener, type BoundListener } from "./listener.js";
import { createGatewayLogger, type GatewayLogger } from "./log/logger.js";
import { DestinationPolicy } from "../features/permissions/destination-policy.js";
import { UdpListener } from "../features/udp/udp-listener.js";
import type { UdpRelayCounters } from "../features/udp/udp-relay.js";
import type { PolicyStats } from "../features/permissions/pg-policy.js";
import type { ObservabilityEvents } from "./observability-events.js";
import { ReadBufferPool } from "./read-pump.js";
import { thenMaybe } from "../core/maybe-promise.js";
import { GatewayStore, loadRedisConnector, type InjectedStore, type RedisConnector, type StoreState } from "./store/gateway-store.js";

export interface GatewayOptions {
  /** Time for the guard, bans and durations (default: the system clock). */
  clock?: Clock;
  /** A ready logger; otherwise one is made from config.log. */
  logger?: GatewayLogger;
  /** Where log lines go when the gateway makes its logger (default stdout). */
  logDestination?: NodeJS.WritableStream;
  /** Name resolution for the destination policy (default: the system resolver). */
  resolve?: (host: string) => Promise<string[]>;
  /** Randomness of probe resistance's inter-packet timing (default: the system's). */
  rng?: Rng;
  /** Where `store.url_env` is read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** A store to count in instead of the one `[store]` names (a worker's message store to its primary). */
  store?: InjectedStore;
  /** How long start() waits for a shared store before starting in its failure mode (default 2 s). */
  storeConnectTimeoutMs?: number;
  /** The Redis client module, for `[store] kind = "redis"` (Gateway.open loads it; the memory store never does). */
  redis?: RedisConnector;
}

export class Gateway {
  readonly events = new EventEmitter<GatewayEvents>();
  private readonly ctx: GatewayContext;
  private readonly listeners = new Map<string, Listener | UdpListener>();
  private readonly stores: GatewayStore;
  private started = false;

  /** A gateway on the store `config` names, loading the Redis client first when that is Redis. */
  static async open(config: Config, o: GatewayOptions = {}): Promise<Gateway> {
    const redis = config.store.kind === "redis" && o.store === undefined && o.redis === undefined ? await loadRedisConnector() : o.redis;
    return new Gateway(config, { ...o, redis });
  }

  constructor(
    config: Config,
    private readonly o: GatewayOptions = {},
  ) {
    const clock = o.clock ?? new TurnCachedClock(systemClock);
    const logger =
      o.logger ?? createGatewayLogger({ format: config.log.format, level: config.log.level, auditDestinations: config.log.audit_destinations, destination: o.logDestination });
    // Password-check waits and drops, store fallbacks: metrics read them on the same emitter (their types live with the metrics).
    const observed = this.events as unknown as EventEmitter<ObservabilityEvents>;
    this.stores = new GatewayStore(config.store, {
      env: o.env,
      injected: o.store,
      redis: o.redis,
      onModeChange: (from, to, reason) => {
        // One line per switch: an operator sees when the fleet's shared state stopped (and started again) deciding.
        if (to === "redis") logger.info("store: back on redis", { from, reason });
        else logger.warn(`store: redis unavailable, deciding by ${to}`, { on_failure: to, reason, redis: this.stores.where });
        observed.emit("store_fallback", { mode: to === "redis" ? "none" : to });
      },
    });
    // A gateway never crashes on a listener of events that throws; EventEmitter's "error" is not used.
    this.events.setMaxListeners(64);
    const guard = new ConnectionGuard(config.guard, {
      clock,
      store: this.stores.store,
      // An injected store's owner releases a dead peer's leases at once (MessageStoreHost.releaseLeases): no TTL to renew.
      leaseTtlMs: o.store === undefined ? config.store.lease_ttl : Infinity,
      onBanEvent: (e) => this.onFleetBan(e),
      onShadow: (address, hit) => {
        logger.limited({ remote_addr: address, limiter: hit.limiter, reason: `shadow_${hit.reason}` });
        this.events.emit("refused", { listener: "", remote_addr: address, limiter: hit.limiter, reason: hit.reason, shadow: true });
      },
      onDefensiveMode: (t) => {
        if (t.log) {
          const s = guard.saturation();
          const fields = { reason: t.reason, tracked: s.tracked, max_tracked: s.maxTracked, prefixes: s.prefixes, live_evictions: s.liveEvictions, suppressed_starts: t.suppressed };
          logger.warn(t.active ? "defensive mode on: failed-login table full, tracking prefixes" : "defensive mode off", fields);
        }
        this.events.emit("saturation", { active: t.active, reason: t.reason });
      },
      onPrefixBan: (prefix, until, failures, shadow) => this.announceBan(prefix, prefix, until, failures, shadow),
    });
    const users = new UserTable(config.users);
    this.ctx = {
      config,
      clock,
      guard,
      users,
      verifier: new PasswordVerifier(users, verifierSettings(config.auth), clock, {
        waited: (ms, priority) => observed.emit("verification_wait", { seconds: ms / 1000, priority }),
        dropped: (reason) => observed.emit("verification_drop", { reason }),
      }),
      policy: this.policyOf(config),
      logger,
      events: this.events,
      // On a shared store (Redis, or a worker's primary) the byte caps draw from leased quotas there, so each key holds to its cap.
      bandwidth: new GatewayBandwidth(config.bandwidth, { clock, events: this.events, injected: o.store, ...(this.stores.redis === undefined ? {} : { redis: this.stores.redis }) }),
      store: this.stores.store,
      readBuffers: new ReadBufferPool(),
      rng: o.rng,
      announceBan: (key, remote, until, failures, shadow) => this.announceBan(key, remote, until, failures, shadow),
    };
  }

  get config(): Config {
    return this.ctx.config;
  }

  get logger(): GatewayLogger {
    return this.ctx.logger;
  }

  /** Bandwidth shaping: shaped connections now and the shaper's counters (for metrics and the admin API). */
  get bandwidth(): GatewayBandwidth {
    return this.ctx.bandwidth;
  }

  /** Datagram and flow counters of a udp listener (undefined for other kinds or unknown names). */
  udpCounters(listener: string): Readonly<UdpRelayCounters> | undefined {
    const l = this.listeners.get(listener);
    return l instanceof UdpListener ? l.counters : undefined;
  }

  /** Bans, back-offs and failure streaks by address key (on a shared store its answers are promises). */
  get penaltyBox(): PenaltyBox<boolean> {
    return this.ctx.guard.penaltyBox;
  }

  /** The store the guard counts in: a MemoryStore, or the RedisStore a fleet shares. */
  get store(): Store<boolean> {
    return this.stores.store;
  }

  /** "memory", "redis", or the failure mode answering while Redis is unavailable (for /readyz and metrics). */
  get storeState(): StoreState {
    return this.stores.state;
  }

  /** Failovers, recoveries and decisions the failure mode answered (undefined on memory). */
  get storeCounters(): Readonly<HealthCounters> | undefined {
    return this.stores.counters;
  }

  /** The failed-login table, the prefix table and defensive mode (for metrics). */
  saturation(): SaturationStats {
    return this.ctx.guard.saturation();
  }

  /** Refusals so far by `limiter:reason`. */
  refusalCounts(): ReadonlyMap<string, number> {
    return this.ctx.guard.refusalCounts();
  }

  /** Connections open now, over all listeners. */
  get openConnections(): number {
    return this.ctx.guard.registry.size;
  }

  /** The key bans and per-IP limits use for `address` (the address, or its IPv6 prefix). */
  keyOf(address: string): string {
    return this.ctx.guard.keyOf(address);
  }

  /** State of `address` under a guard limiter, without consuming (undefined when that limiter is not on). */
  peekLimit(limiter: string, address: string): Record<string, unknown> | undefined | Promise<Record<string, unknown> | undefined> {
    return this.ctx.guard.peek(limiter, address);
  }

  /** Readiness of each connect listener's signed PostgreSQL policy (listeners without `policy` are not listed). */
  permissionsReady(): Array<{ listener: string; ready: boolean }> {
    const out: Array<{ listener: string; ready: boolean }> = [];
    for (const [name, l] of this.listeners) {
      const d = l instanceof Listener ? l.signedDestinations : undefined;
      if (d !== undefined) out.push({ listener: name, ready: d.ready() });
    }
    return out;
  }

  // --- metrics accessors: snapshots read on scrape ---

  /** Client flows a udp listener tracks now (undefined for other kinds or unknown names). */
  udpFlows(listener: string): number | undefined {
    const l = this.listeners.get(listener);
    return l instanceof UdpListener ? l.connections : undefined;
  }

  /** Counters and readiness of each connect listener's signed PostgreSQL policy (listeners without `policy` are not listed). */
  permissionStats(): Array<{ listener: string; ready: boolean; stats: PolicyStats }> {
    const out: Array<{ listener: string; ready: boolean; stats: PolicyStats }> = [];
    for (const [name, l] of this.listeners) {
      const d = l instanceof Listener ? l.signedDestinations : undefined;
      if (d !== undefined) out.push({ listener: name, ready: d.ready(), stats: d.policy.stats() });
    }
    return out;
  }

  /** Password checks waiting and running now. */
  get verifications(): { queued: number; running: number } {
    const g = this.ctx.verifier.gate;
    return { queued: g.queued, running: g.running };
  }

  // --- end metrics accessors ---

  /** Binds every listener. On a bind failure the ones already bound are closed again and the error is thrown. */
  async start(): Promise<BoundListener[]> {
    if (this.started) throw new Error("gateway already started");
    this.started = true;
    const bound: BoundListener[] = [];
    try {
      // A shared store: wait a bounded time for it, then subscribe to the fleet's bans (both go on in the background if it is down).
      if (!(await this.stores.connect(this.o.storeConnectTimeoutMs ?? 2000))) void this.ctx.guard.start();
      else await this.ctx.guard.start();
      for (const lc of this.ctx.config.listener) {
        const l = lc.kind === "udp" ? new UdpListener(lc, this.ctx) : new Listener(lc, this.ctx);
        this.listeners.set(lc.name, l);
        bound.push(await l.listen());
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
    return bound;
  }

  /** Where each listener is bound now. */
  bound(): BoundListener[] {
    return [...this.listeners.values()].map((l) => l.bound());
  }

  /**
   * Stops the gateway. With `drainMs` > 0 it is a graceful stop: every
   * listener stops accepting at once, open connections get up to `drainMs`
   * to finish by themselves (or until `cutNow` aborts the wait), then the
   * rest are cut. Without it everything is cut at once.
   */
  async stop(o: StopOptions = {}): Promise<StopResult> {
    const all = [...this.listeners.values()];
    this.listeners.clear();
    // UDP flows have no end to wait for: only TCP connections drain.
    const streams = all.filter((l): l is Listener => l instanceof Listener);
    const open = (): number => streams.reduce((n, l) => n + l.connections, 0);
    const before = open();
    const drainMs = o.drainMs ?? 0;
    if (drainMs > 0 && before > 0 && o.cutNow?.aborted !== true) {
      for (const l of streams) l.stopAccepting();
      await drained(streams, drainMs, this.ctx.clock, o.cutNow);
    }
    const cut = open();
    await Promise.all(all.map((l) => l.close()));
    this.ctx.guard.registry.closeEverything("stopping");
    this.ctx.guard.close();
    // Unspent byte leases go back to Redis before the store closes.
    await this.ctx.bandwidth.close();
    await this.stores.close();
    return { drained: before - cut, cut };
  }

  /**
   * Applies a validated configuration. Listeners with the same name, kind and
   * bind address keep their socket and open connections and take the new
   * settings; others are closed or bound anew. Guard counts and bans carry
   * over. If anything in the new configuration cannot be set up (a TLS file
   * that does not load, a port in use), the error is thrown; settings already
   * swapped stay, which the caller reports.
   */
  async reload(next: Config): Promise<BoundListener[]> {
    // Build what can fail first, so a bad file changes nothing.
    const users = new UserTable(next.users);
    const policy = this.policyOf(next);
    // Bandwidth caps: live shaped connections change rate at once.
    this.ctx.bandwidth.update(next.bandwidth);
    for (const lc of next.listener) {
      const cur = this.listeners.get(lc.name);
      if (cur && cur.canUpdateTo(lc)) cur.update(lc);
    }
    this.ctx.guard.configure(next.guard);
    this.ctx.users = users;
    this.ctx.verifier.useUsers(users);
    this.ctx.verifier.configure(verifierSettings(next.auth));
    this.ctx.policy = policy;
    this.ctx.config = next;
    const wanted = new Set(next.listener.map((l) => l.name));
    for (const [name, l] of [...this.listeners]) {
      const lc = next.listener.find((x) => x.name === name);
      if (!wanted.has(name) || (lc && !l.canUpdateTo(lc))) {
        this.listeners.delete(name);
        await l.close();
      }
    }
    if (this.started) {
      for (const lc of next.listener) {
        if (this.listeners.has(lc.name)) continue;
        const l = lc.kind === "udp" ? new UdpListener(lc, this.ctx) : new Listener(lc, this.ctx);
        this.listeners.set(lc.name, l);
        await l.listen();
      }
    }
    this.events.emit("reload", { ok: true, problems: [] });
    return this.bound();
  }

  /**
   * Bans an address (or a key from keyOf) now, closing its connections when
   * configured (on a shared store: at every gateway of the fleet). Returns
   * the end in wall-clock ms, as a promise on a shared store.
   */
  ban(addressOrKey: string, durationMs?: number, reason?: string): number | Promise<number> {
    const key = addressOrKey.includes("/") ? addressOrKey : this.keyOf(addressOrKey);
    const box = this.penaltyBox;
    const announce = (until: number, streak: number): number => this.announceBan(key, addressOrKey, until, streak, box.shadow, reason);
    const until = box.ban(key, durationMs);
    if (until instanceof Promise) return until.then(async (u) => announce(u, (await box.status(key)).streak));
    return announce(until, (box as PenaltyBox<true>).status(key).streak);
  }

  /** Lifts a ban (and the failure record) of an address or key, on every gateway of a shared store. */
  unban(addressOrKey: string, reason = "manual"): boolean | Promise<boolean> {
    const key = addressOrKey.includes("/") ? addressOrKey : this.keyOf(addressOrKey);
    // A prefix banned in defensive mode is lifted by its CIDR key.
    return thenMaybe(this.penaltyBox.forget(key), (forgot) => {
      const had = forgot || this.ctx.guard.defensiveMode.forget(key);
      if (had) {
        this.ctx.logger.unban({ remote_addr: key, reason });
        this.events.emit("unban", { key, reason });
      }
      return had;
    });
  }

  /** `untilBox`: the ban's end on the penalty box's clock (the store's, on a shared store). */
  private announceBan(key: string, remote: string, untilBox: number, failures: number, shadow: boolean, reason?: string): number {
    const { clock, guard, logger } = this.ctx;
    const until = clock.wallNow() + (untilBox - guard.penaltyBox.now());
    logger.ban({ remote_addr: remote, until, failures });
    const closed = !shadow && guard.config.ban_closes_connections ? guard.registry.closeAll(key, "banned") : 0;
    this.events.emit("ban", { key, until, failures, closed, shadow, ...(reason === undefined ? {} : { reason }) });
    return until;
  }

  /**
   * A ban seen on the shared store: placed by any gateway of the fleet
   * (this one too), or learned when the ban list was reloaded after a
   * reconnection. The connections of its address here are cut.
   */
  private onFleetBan(e: BanEvent): void {
    if (e.kind !== "ban" || this.ctx === undefined) return;
    const { guard, logger } = this.ctx;
    if (guard.penaltyBox.shadow || !guard.config.ban_closes_connections) return;
    const closed = guard.registry.closeAll(e.key, "banned");
    if (closed > 0) logger.info("fleet ban: connections cut", { remote_addr: e.key, closed });
  }

  private policyOf(c: Config): DestinationPolicy {
    return new DestinationPolicy(c.policy.rule, this.o.resolve ? { resolve: this.o.resolve } : undefined);
  }
}

export interface StopOptions {
  /** How long open connections may take to finish after accepting stops (default 0: cut at once). */
  drainMs?: number;
  /** Aborting it ends the wait early and cuts what is still open (a second SIGTERM). */
  cutNow?: AbortSignal;
}

export interface StopResult {
  /** Connections open when the stop began that ended by themselves. */
  drained: number;
  /** Connections still open at the end of the drain, closed by the gateway. */
  cut: number;
}

/** Resolves when every listener is idle, `ms` have passed, or `cutNow` aborts, whichever comes first. */
function drained(listeners: readonly { idle(): Promise<void> }[], ms: number, clock: Clock, cutNow: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = clock.setTimer(done, ms);
    cutNow?.addEventListener("abort", done, { once: true });
    void Promise.all(listeners.map((l) => l.idle())).then(done);
    function done(): void {
      timer.cancel();
      cutNow?.removeEventListener("abort", done);
      resolve();
    }
  });
}
