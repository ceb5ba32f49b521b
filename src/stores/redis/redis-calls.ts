/** What the Redis store's tables call on their store. */
import type { Cluster, Redis } from "ioredis";
import type { Outcome } from "../../algorithms/outcome.js";
import type { Failed } from "../store.js";
import type { StoreMode } from "../store-health.js";
import type { LuaScript } from "./lua-script.js";

export type RedisClient = Redis | Cluster;

/**
 * What the Redis store's tables call on it. The store implements it; the
 * tables know only this, so the store and the tables it makes do not
 * import each other.
 */
export interface RedisCalls {
  readonly prefix: string;
  readonly client: RedisClient;
  /** "redis", or the failure mode answering while Redis is unavailable. */
  readonly mode: StoreMode;
  /** One rate-script operation, batched with the others of this tick; FAILED when Redis did not answer. */
  rate(key: string, spec: string, cost: number, now: string, flag: string): Promise<Outcome | Failed>;
  /** A script call with the store's deadline; throws when Redis fails. */
  run(script: LuaScript, keys: string[], args: string[]): Promise<unknown>;
  /** A plain command with the store's deadline; undefined when Redis fails. */
  command<T>(send: (c: RedisClient) => Promise<T>): Promise<T | undefined>;
  /** Calls `listener` each time Redis answers again after an outage; returns the unsubscribe. */
  onRecovery(listener: () => void): () => void;
}
