/**
 * Bandwidth shaping for one Gateway: the registry of byte buckets built from
 * the `[bandwidth]` section, the choice per connection of a byte-cap stage
 * for its relay, reloads, and the throttle time reported to metrics.
 *
 * A connection is shaped when a cap applies to its IP or (connect listeners)
 * to its identity under the configuration at the time its relay starts:
 * its relay then has a byte-cap stage (ByteCapStage); otherwise it has
 * none and costs nothing. A reload
 * re-rates the buckets of every shaped connection at once.
 *
 * On a Redis store every identity and IP bucket also draws from a leased
 * quota in Redis (RedisQuotaSource), so the gateways sharing the store
 * hold a key to its cap together. Nothing on the relay path waits on
 * Redis: each gateway reserves a slice (LEASE_SLICE_MS of the rate) at once
 * and spends it locally; only a refill goes to Redis.
 *
 * With `workers = N` on the memory store the same holds across the workers:
 * each draws from one bucket per key in the primary, through the message
 * store (MessageQuotaSource), one pool (POOL_BYTES) at a time.
 */
import type { Clock, TimerHandle } from "../../core/clock.js";
import { ipKey } from "../../net/ip-key.js";
import { type BandwidthConfig, type DirectionalRate, parseBandwidthConfig } from "./bandwidth-config.js";
import { BandwidthCapacityError, type BandwidthMetrics, BandwidthRegistry } from "./bandwidth-registry.js";
import { MessageQuotaSource, isQuotaHost } from "./message-quota.js";
import type { QuotaSource } from "./quota.js";
import { RedisQuotaSource } from "./redis-quota.js";
import type { RedisStore } from "../../stores/redis/redis-store.js";
import { ByteCapStage } from "./cap-stage.js";

/** What the shaping needs to know of a connection. */
export interface ShapedConnection {
  readonly listener: string;
  readonly remote: string;
  /** Who authenticated (connect listeners), set before the upstream is assigned. */
  readonly identity: string | undefined;
  close(reason: string): void;
}

/** Where throttle time is reported (the gateway's events). */
export interface ThrottleEvents {
  emit(event: "throttle", e: { direction: "in" | "out"; seconds: number }): unknown;
}

export interface GatewayBandwidthOptions {
  clock: Clock;
  events: ThrottleEvents;
  /** Identities plus IPs tracked at once (default 100,000). */
  maxKeys?: number;
  /** The Redis store of the fleet: caps are then shared by every gateway on it (under its prefix). */
  redis?: RedisStore;
  /**
   * A store handed to the gateway (a worker's message store to its
   * primary): when it can hold byte quotas, caps are shared by every
   * process on it.
   */
  injected?: unknown;
}

/**
 * Time's worth of a key's rate one gateway reserves from Redis at once.
 * What N gateways together may spend beyond a cap is about one such slice
 * plus one local pool (POOL_BYTES) each; shorter slices mean more Redis
 * calls (about 1000 / LEASE_SLICE_MS reservations per second per busy key).
 */
export const LEASE_SLICE_MS = 20;
/** Bytes a bucket takes from its gateway's lease at once. */
export const POOL_BYTES = 16 * 1024;

/** How often throttle time is reported while shaped connections are open. */
const REPORT_EVERY_MS = 1000;

const capped = (r: DirectionalRate): boolean => r.upload !== null || r.download !== null;

function anyCap(c: BandwidthConfig): boolean {
  if (capped(c.perIdentity) || capped(c.perIp)) return true;
  for (const r of c.identityOverrides.values()) if (capped(r)) return true;
  return c.cidrOverrides.some((o) => capped(o.rate));
}

export class GatewayBandwidth {
  private readonly registry: BandwidthRegistry;
  private readonly quota: QuotaSource | undefined;
  private active: boolean;
  private shaped = 0;
  private reportedMs = { upload: 0, download: 0 };
  private ticker: TimerHandle | undefined;

  constructor(
    section: unknown,
    private readonly o: GatewayBandwidthOptions,
  ) {
    const config = parseBandwidthConfig(section);
    this.active = anyCap(config);
    this.quota =
      o.redis !== undefined
        ? new RedisQuotaSource({ store: o.redis, sliceMs: LEASE_SLICE_MS })
        : isQuotaHost(o.injected)
          ? new MessageQuotaSource(o.injected)
          : undefined;
    this.registry = new BandwidthRegistry({
      clock: o.clock,
      config,
      maxKeys: o.maxKeys,
      ...(this.quota === undefined ? {} : { quota: { source: this.quota, sliceBytes: POOL_BYTES, ip: true } }),
    });
  }

  /** Whether caps are shared with other processes (gateways on one Redis, or the workers of one primary). */
  get shared(): boolean {
    return this.quota !== undefined;
  }

  /** Whether any cap is configured at all. */
  get enabled(): boolean {
    return this.active;
  }

  /** Connections relayed through the shaper now. */
  get shapedConnections(): number {
    return this.shaped;
  }

  /** Applies a reloaded `[bandwidth]` section; shaped connections change rate at once. */
  update(section: unknown): void {
    const config = parseBandwidthConfig(section);
    this.registry.update(config);
    this.active = anyCap(config);
  }

  /** Counters of the shaper (bytes relayed and delayed, throttle time, keys). */
  metrics(): BandwidthMetrics {
    return this.registry.metrics();
  }

  /** The identities and addresses held back longest, for the admin API (see BandwidthRegistry.throttled). */
  throttled(limit: number): Array<{ key: string; uploadMs: number; downloadMs: number }> {
    return this.registry.throttled(limit);
  }

  /**
   * The byte-cap stage of `conn`'s relay when a cap applies to it (chosen
   * once, as its relay starts), else undefined. A registry full of live
   * keys closes the connection (fail closed). The relay closes the stage
   * when it ends, which gives the keys back.
   */
  capStageFor(conn: ShapedConnection): ByteCapStage | undefined {
    if (!this.active) return undefined;
    const identity = conn.identity;
    if (!this.applies(conn.remote, identity)) return undefined;
    let shaping;
    try {
      shaping = this.registry.open({ ip: conn.remote, identity });
    } catch (e) {
      if (e instanceof BandwidthCapacityError) {
        conn.close("bandwidth_capacity");
        return undefined;
      }
      throw e;
    }
    this.shaped++;
    this.ticker ??= this.o.clock.setTimer(this.tick, REPORT_EVERY_MS);
    return new ByteCapStage(shaping, () => {
      this.shaped--;
      this.report();
    });
  }

  /** Stops the report timer and gives unspent leases back to Redis (the gateway is stopping). */
  close(): Promise<void> {
    this.ticker?.cancel();
    this.ticker = undefined;
    this.report();
    return this.quota instanceof RedisQuotaSource ? this.quota.dispose() : Promise.resolve();
  }

  private applies(remote: string, identity: string | undefined): boolean {
    if (identity !== undefined && capped(this.registry.rateOf(`id:${identity}`))) return true;
    try {
      return capped(this.registry.rateOf(`ip:${ipKey(remote)}`));
    } catch {
      return false;
    }
  }

  private readonly tick = (): void => {
    this.ticker = undefined;
    this.report();
    if (this.shaped > 0) this.ticker = this.o.clock.setTimer(this.tick, REPORT_EVERY_MS);
  };

  /** Emits the throttle time accrued since the last report ("in": client to upstream, "out": back). */
  private report(): void {
    const m = this.registry.metrics();
    const up = m.upload.throttledMs - this.reportedMs.upload;
    const down = m.download.throttledMs - this.reportedMs.download;
    this.reportedMs = { upload: m.upload.throttledMs, download: m.download.throttledMs };
    if (up > 0) this.o.events.emit("throttle", { direction: "in", seconds: up / 1000 });
    if (down > 0) this.o.events.emit("throttle", { direction: "out", seconds: down / 1000 });
  }
}
