/**
 * The Redis side of the gateway's store, loaded only when `[store] kind =
 * "redis"`: an ioredis client (a Cluster client when `cluster = true`)
 * tuned for a decision path, and the RedisStore on it. Commands fail at
 * once while disconnected (the store answers from its failure mode) and
 * reconnection keeps trying every half second.
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import type { ConnectionOptions } from "node:tls";
import { Cluster, Redis } from "ioredis";
import { RedisStore } from "../../stores/redis/redis-store.js";
import type { StoreMode } from "../../stores/store-health.js";
import type { StoreConfig } from "./config-schema.js";

/** The client and the store on it for `url` (already resolved from url / url_env). */
export function openRedisStore(
  url: string,
  cfg: StoreConfig,
  onModeChange: (from: StoreMode, to: StoreMode, reason: string) => void,
): { client: Redis | Cluster; store: RedisStore } {
  const client = redisClient(url, cfg);
  const store = new RedisStore({
    client,
    prefix: cfg.prefix,
    timeoutMs: cfg.timeout,
    onFailure: cfg.on_failure,
    expectedInstances: cfg.expected_instances,
    insuranceMaxKeys: Math.min(cfg.max_keys, 100_000),
    events: { onModeChange },
  });
  return { client, store };
}

function tlsOf(url: URL, cfg: StoreConfig): ConnectionOptions | undefined {
  if (url.protocol !== "rediss:") return undefined;
  const t = cfg.tls;
  const read = (p: string | undefined): Buffer | undefined => (p === undefined ? undefined : readFileSync(p));
  // SNI names a host, never an address (RFC 6066); the certificate is checked against either.
  const host = url.hostname.replace(/^\[|\]$/g, "");
  return { ...(isIP(host) === 0 ? { servername: host } : {}), ca: read(t?.ca), cert: read(t?.cert), key: read(t?.key) };
}

/** Retries quickly at first, then every half second, forever: the store is back soon after Redis is. */
const retry = (times: number): number => Math.min(50 * times, 500);

function redisClient(text: string, cfg: StoreConfig): Redis | Cluster {
  const url = new URL(text);
  const tls = tlsOf(url, cfg);
  const auth = {
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
  };
  // Auto-pipelining: the commands of one event-loop turn (a connection's caps and rates, the releases
  // of the connections that ended) leave in one write and are read back from one reply buffer.
  const common = { maxRetriesPerRequest: 0, enableAutoPipelining: true, ...auth, ...(tls ? { tls } : {}) };
  if (cfg.cluster) {
    return new Cluster([{ host: url.hostname, port: Number(url.port || 6379) }], {
      enableOfflineQueue: false,
      clusterRetryStrategy: retry,
      redisOptions: common,
      ...(tls ? { dnsLookup: (address: string, cb: (err: null, a: string) => void) => cb(null, address) } : {}),
    });
  }
  const db = Number(url.pathname.slice(1) || 0);
  return new Redis({ host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port || 6379), db, ...common, enableOfflineQueue: false, retryStrategy: retry, lazyConnect: false });
}
