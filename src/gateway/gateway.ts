/**
 * The gateway: listeners, the connection guard, identities, the destination
 * policy and the log, all owned by one instance. Two gateways in one process
 * share nothing. start() binds every listener, reload() applies a new
 * configuration without dropping connections, stop() closes everything.
 *
 * What an admin API or metrics need is exposed here: `events` (connections,
 * refusals, auth results, policy decisions, bans), `penaltyBox` (ban listing),
 * `ban()` / `unban()`, and `refusalCounts()`.
 */
import { EventEmitter } from "node:events";
import { type Clock, TurnCachedClock, systemClock } from "../core/clock.js";
import type { Rng } from "../core/random.js";
import type { Config } from "./config/schema.js";
import { MemoryStore } from "../stores/memory-store.js";
import type { PenaltyBox } from "../limiter/penalty-box.js";
import { GatewayBandwidth } from "./bandwidth/gateway-bandwidth.js";
import type { GatewayContext } from "./context.js";
import type { GatewayEvents } from "./events.js";
import { ConnectionGuard } from "./guard/connection-guard.js";
import { UserTable } from "./identity/basic-auth.js";
import { Listener, type BoundListener } from "./listener.js";
import { createGatewayLogger, type GatewayLogger } from "./log/logger.js";
import { DestinationPolicy } from "./policy/destination-policy.js";
import { UdpListener } from "./udp/udp-listener.js";
import type { UdpRelayCounters } from "../udp/udp-relay.js";
import type { PolicyStats } from "../permissions/pg-policy.js";
import { ReadBufferPool } from "./read-pump.js";

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
}

export class Gateway {
  readonly events = new EventEmitter<GatewayEvents>();
  private readonly ctx: GatewayContext;
  private readonly listeners = new Map<string, Listener | UdpListener>();
  private readonly store: MemoryStore;
  private started = false;

  constructor(
    config: Config,
    private readonly o: GatewayOptions = {},
  ) {
    const clock = o.clock ?? new TurnCachedClock(systemClock);
    this.store = new MemoryStore({ maxKeys: config.store.max_keys });
    const logger =
      o.logger ?? createGatewayLogger({ format: config.log.format, level: config.log.level, auditDestinations: config.log.audit_destinations, destination: o.logDestination });
    // A gateway never crashes on a listener of events that throws; EventEmitter's "error" is not used.
    this.events.setMaxListeners(64);
    const guard = new ConnectionGuard(config.guard, {
      clock,
      store: this.store,
      onShadow: (address, hit) => {
        logger.limited({ remote_addr: address, limiter: hit.limiter, reason: `shadow_${hit.reason}` });
        this.events.emit("refused", { listener: "", remote_addr: address, limiter: hit.limiter, reason: hit.reason, shadow: true });
      },
    });
    this.ctx = {
      config,
      clock,
      guard,
      users: new UserTable(config.users),
      policy: this.policyOf(config),
      logger,
      events: this.events,
      bandwidth: new GatewayBandwidth(config.bandwidth, { clock, events: this.events }),
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

  /** Bans, back-offs and failure streaks by address key. */
  get penaltyBox(): PenaltyBox {
    return this.ctx.guard.penaltyBox;
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
  peekLimit(limiter: string, address: string): Record<string, unknown> | undefined {
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

  // --- end metrics accessors ---

  /** Binds every listener. On a bind failure the ones already bound are closed again and the error is thrown. */
  async start(): Promise<BoundListener[]> {
    if (this.started) throw new Error("gateway already started");
    this.started = true;
    const bound: BoundListener[] = [];
    try {
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

  async stop(): Promise<void> {
    const all = [...this.listeners.values()];
    this.listeners.clear();
    await Promise.all(all.map((l) => l.close()));
    this.ctx.guard.registry.closeEverything("stopping");
    this.ctx.bandwidth.close();
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

  /** Bans an address (or a key from keyOf) now, closing its connections when configured. Returns the end in wall-clock ms. */
  ban(addressOrKey: string, durationMs?: number): number {
    const key = addressOrKey.includes("/") ? addressOrKey : this.keyOf(addressOrKey);
    const until = this.penaltyBox.ban(key, durationMs);
    const st = this.penaltyBox.status(key);
    return this.announceBan(key, addressOrKey, until, st.streak, this.penaltyBox.shadow);
  }

  /** Lifts a ban (and the failure record) of an address or key. */
  unban(addressOrKey: string, reason = "manual"): boolean {
    const key = addressOrKey.includes("/") ? addressOrKey : this.keyOf(addressOrKey);
    const had = this.penaltyBox.forget(key);
    if (had) {
      this.ctx.logger.unban({ remote_addr: key, reason });
      this.events.emit("unban", { key, reason });
    }
    return had;
  }

  private announceBan(key: string, remote: string, untilMonotonic: number, failures: number, shadow: boolean): number {
    const { clock, guard, logger } = this.ctx;
    const until = clock.wallNow() + (untilMonotonic - clock.now());
    logger.ban({ remote_addr: remote, until, failures });
    const closed = !shadow && guard.config.ban_closes_connections ? guard.registry.closeAll(key, "banned") : 0;
    this.events.emit("ban", { key, until, failures, closed, shadow });
    return until;
  }

  private policyOf(c: Config): DestinationPolicy {
    return new DestinationPolicy(c.policy.rule, this.o.resolve ? { resolve: this.o.resolve } : undefined);
  }
}
