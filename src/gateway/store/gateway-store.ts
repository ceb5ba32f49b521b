/**
 * Builds the store the gateway counts in from the `[store]` section, and
 * owns its connections: a MemoryStore, or a RedisStore on an ioredis client
 * (a Cluster client when `cluster = true`) tuned for a decision path:
 * commands fail at once while disconnected (the store answers from its
 * failure mode) and reconnection keeps trying every half second.
 *
 * `connect()` waits a bounded time for Redis at start; if it does not
 * answer, the store goes to its failure mode at once (reported through
 * `onModeChange`, which the gateway logs in one line) and comes back to
 * Redis by itself when the store's probe gets an answer.
 *
 * The Redis client and store are loaded only when `[store]` names Redis
 * (`loadRedisConnector`, then `redis` in the options): a gateway on the
 * memory store never loads ioredis (idle memory, start time).
 */
import { readFileSync } from "node:fs";
import type { Cluster, Redis } from "ioredis";
import { systemClock } from "../../core/clock.js";
import { MemoryStore } from "../../stores/memory-store.js";
import type { RedisStore } from "../../stores/redis/redis-store.js";
import type { HealthCounters, StoreMode } from "../../stores/store-health.js";
import type { Store } from "../../stores/store.js";
import { type StoreConfig, redactUrl } from "./config-schema.js";
import { explainMissingPeer } from "../../core/optional-peer.js";

export interface GatewayStoreOptions {
  /** Where url_env is read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Every switch between Redis and the failure mode, with its reason. */
  onModeChange?: (from: StoreMode, to: StoreMode, reason: string) => void;
  /**
   * A store made by the caller instead of the one `[store]` names: a
   * worker's message store, whose memory store lives in the primary (kind
   * "memory" shared by the workers). The gateway waits for it at start and
   * closes it with itself; the caller reports its mode changes.
   */
  injected?: InjectedStore;
  /** Opens the Redis client and store (from `loadRedisConnector()`); required when `[store] kind = "redis"`. */
  redis?: RedisConnector;
}

/** What the lazily loaded Redis module offers (src/gateway/store/redis-connection.ts). */
export type RedisConnector = typeof import("./redis-connection.js");

/** Loads the Redis client and store, for a `[store]` that names Redis. */
export function loadRedisConnector(): Promise<RedisConnector> {
  // ioredis is an optional peer dependency: a missing one is named in one line.
  return import("./redis-connection.js").catch((err: unknown) => explainMissingPeer(err, "ioredis", '[store] kind = "redis"'));
}

/** What the gateway needs of a store handed to it (a MessageStore fits). */
export interface InjectedStore extends Store<false> {
  readonly mode: StoreMode<string>;
  ready(timeoutMs: number): Promise<boolean>;
  close(): void;
}

/** What /readyz and the metrics report: "memory", "redis", or the failure mode answering now. */
export type StoreState = "memory" | StoreMode;

/** A shared store's health counters, with the time its failure mode has answered so far. */
export interface StoreCounters extends HealthCounters {
  /** Seconds spent on the failure mode (insurance, open or closed) since start, the current outage included. */
  readonly fallbackSeconds: number;
}

export class GatewayStore {
  readonly store: Store<boolean>;
  /** The Redis store, when the gateway shares one. */
  readonly redis: RedisStore | undefined;
  /** Where Redis is, password redacted (for logs). */
  readonly where: string | undefined;
  private readonly client: Redis | Cluster | undefined;
  private readonly injected: InjectedStore | undefined;
  private closed = false;
  /** When the current stint on the failure mode began (monotonic ms), if the store is on it. */
  private fallbackSince: number | undefined;
  /** Milliseconds on the failure mode in the stints that have ended. */
  private fallbackMs = 0;

  constructor(cfg: StoreConfig, o: GatewayStoreOptions = {}) {
    if (o.injected !== undefined) {
      this.injected = o.injected;
      this.store = o.injected;
      return;
    }
    if (cfg.kind === "memory") {
      this.store = new MemoryStore({ maxKeys: cfg.max_keys });
      return;
    }
    if (o.redis === undefined) throw new Error('store.kind: "redis" needs the Redis connector (Gateway.open loads it)');
    const url = redisUrlOf(cfg, o.env ?? process.env);
    this.where = redactUrl(url);
    const opened = o.redis.openRedisStore(url, cfg, (from, to, reason) => {
      this.noteMode(to);
      o.onModeChange?.(from, to, reason);
    });
    this.client = opened.client;
    this.redis = opened.store;
    this.store = this.redis;
  }

  get kind(): StoreConfig["kind"] {
    return this.redis === undefined ? "memory" : "redis";
  }

  get state(): StoreState {
    const m = this.injected?.mode;
    if (m !== undefined) return m === "insurance" || m === "open" || m === "closed" ? m : "memory";
    return this.redis?.mode ?? "memory";
  }

  /** Failovers, recoveries, decisions answered by the failure mode and the time it answered (undefined on memory). */
  get counters(): StoreCounters | undefined {
    const c = this.redis?.counters;
    if (c === undefined) return undefined;
    return { failovers: c.failovers, recoveries: c.recoveries, fallbackDecisions: c.fallbackDecisions, fallbackSeconds: this.fallbackSeconds };
  }

  /** Seconds on the failure mode so far, the stint under way included (it grows while Redis is away). */
  get fallbackSeconds(): number {
    const open = this.fallbackSince === undefined ? 0 : systemClock.now() - this.fallbackSince;
    return (this.fallbackMs + open) / 1000;
  }

  private noteMode(to: StoreMode): void {
    const now = systemClock.now();
    if (to === "redis") {
      if (this.fallbackSince !== undefined) this.fallbackMs += now - this.fallbackSince;
      this.fallbackSince = undefined;
    } else {
      this.fallbackSince ??= now;
    }
  }

  /**
   * Waits up to `timeoutMs` for Redis. Resolves true when it answers; else
   * the store is put in its failure mode now (rather than at the first
   * connection) and false is returned. Always true on memory.
   */
  async connect(timeoutMs: number): Promise<boolean> {
    if (this.injected !== undefined) return this.injected.ready(timeoutMs);
    const r = this.redis;
    if (r === undefined) return true;
    if (await r.ready(timeoutMs)) return true;
    // Any failed call switches the store to its failure mode and starts its probe.
    await r.command((c) => c.ping());
    return r.mode === "redis";
  }

  /** Closes the Redis connections (the store first, so its probe stops). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.injected?.close();
    await this.redis?.close();
    const c = this.client;
    if (c === undefined) return;
    try {
      await Promise.race([c.quit(), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
    } catch {
      // Not connected: nothing to say goodbye to.
    }
    c.disconnect();
  }
}

/** The URL from `url` or the environment variable `url_env` (run checks that it is set: checkResources). */
export function redisUrlOf(cfg: StoreConfig, env: NodeJS.ProcessEnv): string {
  if (cfg.url !== undefined) return cfg.url;
  const v = cfg.url_env === undefined ? undefined : env[cfg.url_env];
  if (v === undefined || v.length === 0) throw new Error(`store.url_env: the environment variable ${cfg.url_env ?? ""} is not set`);
  return v;
}

/** Configuration problems the schema cannot see: the URL variable, the TLS files. Never shows the URL. */
export function storeProblems(cfg: StoreConfig, env: NodeJS.ProcessEnv = process.env): string[] {
  if (cfg.kind !== "redis") return [];
  const problems: string[] = [];
  if (cfg.url_env !== undefined) {
    const v = env[cfg.url_env];
    if (v === undefined || v.length === 0) problems.push(`store.url_env: the environment variable ${cfg.url_env} is not set`);
    else if (!isRedisUrl(v)) problems.push(`store.url_env: ${cfg.url_env} does not hold a redis:// or rediss:// URL (the value is not shown)`);
    else if (cfg.tls !== undefined && !v.startsWith("rediss:")) problems.push(`store.tls: TLS files need a rediss:// URL in ${cfg.url_env}`);
  }
  for (const k of ["ca", "cert", "key"] as const) {
    const path = cfg.tls?.[k];
    if (path === undefined) continue;
    try {
      readFileSync(path);
    } catch (err) {
      problems.push(`store.tls.${k}: cannot read ${JSON.stringify(path)} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
  }
  return problems;
}

function isRedisUrl(v: string): boolean {
  try {
    const u = new URL(v);
    return (u.protocol === "redis:" || u.protocol === "rediss:") && u.hostname.length > 0;
  } catch {
    return false;
  }
}
