/**
 * A shaped TCP relay in its own process, for tests and benchmarks that
 * measure the relay's memory or run several relays side by side.
 *
 *   node --import tsx test/features/bandwidth/relay-process.ts '{"upstreamPort":1234,"config":{...},"identity":"alice"}'
 *
 * `config` is a [bandwidth] table as in the configuration file. The process
 * sends {port} over IPC once listening, answers "rss" with {rss}, "metrics"
 * with the registry's metrics, {update: table} by reloading the [bandwidth]
 * table, and exits when its parent disconnects.
 */
import { systemClock } from "../../../src/core/clock.js";
import { parseBandwidthConfig } from "../../../src/features/bandwidth/bandwidth-config.js";
import { RedisQuotaSource } from "../../../src/features/bandwidth/redis-quota.js";
import { RedisStore } from "../../../src/stores/redis/redis-store.js";
import { startRelay } from "./harness.js";

const opts = JSON.parse(process.argv[2] ?? "{}") as {
  upstreamPort: number;
  config: unknown;
  identity?: string;
  /** Identity by client address (overrides `identity`). */
  identities?: Record<string, string>;
  maxKeys?: number;
  /** Share identity buckets through Redis leased quotas. */
  redis?: { url: string; prefix: string; sliceMs: number };
};
const store = opts.redis ? new RedisStore({ url: opts.redis.url, prefix: opts.redis.prefix, onFailure: "closed" }) : undefined;
const quota = store ? new RedisQuotaSource({ store, sliceMs: opts.redis!.sliceMs }) : undefined;
const relay = await startRelay(opts.upstreamPort, {
  clock: systemClock,
  config: parseBandwidthConfig(opts.config),
  maxKeys: opts.maxKeys ?? 100_000,
  identityOf: (ip) => opts.identities?.[ip] ?? opts.identity,
  ...(quota ? { quota: { source: quota } } : {}),
});
process.on("message", (m: unknown) => {
  if (m === "rss") process.send!({ rss: process.memoryUsage().rss });
  else if (m === "metrics") process.send!({ metrics: relay.registry.metrics() });
  else if (typeof m === "object" && m !== null && "update" in m) {
    // A reload: the new [bandwidth] table applies to live connections.
    relay.registry.update(parseBandwidthConfig((m as { update: unknown }).update));
    process.send!({ updated: true });
  }
});
process.on("disconnect", () => process.exit(0));
process.send!({ port: relay.port });
