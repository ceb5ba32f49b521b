/** Concurrency leases in Redis, across instances. */
import { randomUUID } from "node:crypto";
import { FAILED, type Failed, type LeaseGrant, type LeaseId, type LeaseTable } from "../store.js";
import { stateKey } from "./key-names.js";
import { LuaScript } from "./lua-script.js";
import { nowArg } from "./redis-rate-table.js";
import type { RedisCalls } from "./redis-calls.js";
import { CONCURRENCY_SCRIPT } from "./scripts/concurrency.js";

const CONCURRENCY = new LuaScript("concurrency", CONCURRENCY_SCRIPT);

/**
 * Concurrency leases in Redis, across instances: each lease is a member of
 * a sorted set scored by its expiry (scripts/concurrency.ts). Lease ids are
 * unique per instance of this table.
 */
export class RedisLeaseTable implements LeaseTable<false> {
  private readonly instance = randomUUID().slice(0, 12);
  private readonly ttl: string;
  private nextId = 1;

  constructor(
    private readonly store: RedisCalls,
    readonly name: string,
    private readonly limit: number,
    ttlMs: number,
    /** Shortest key lifetime: an injected clock's milliseconds are not real ones. */
    private readonly floor: string,
  ) {
    this.ttl = ttlMs === Infinity ? "inf" : String(ttlMs);
  }

  /** @internal The state key of `key` (an admission's script call takes several). */
  redisKey(key: string): string {
    return stateKey(this.store.prefix, this.name, key);
  }

  /**
   * @internal Appends an acquire's arguments as the admission script reads
   * them (now, id, ttl, limit, floor, shadow flag); answers the lease id.
   */
  pushAcquire(args: string[], now: number, shadow: boolean): string {
    const id = `${this.instance}:${this.nextId++}`;
    args.push(nowArg(now), id, this.ttl, String(this.limit), this.floor, shadow ? "s" : "0");
    return id;
  }

  async acquire(key: string, now: number): Promise<LeaseGrant | Failed> {
    const id = `${this.instance}:${this.nextId++}`;
    const r = await this.call("acquire", key, id, now);
    if (r === undefined) return FAILED;
    return { held: r.ok ? r.held : -1, id, retryAfterMs: r.ok ? 0 : r.retry };
  }

  async release(key: string, id: LeaseId, now: number): Promise<boolean | Failed> {
    return (await this.call("release", key, String(id), now))?.ok;
  }

  async renew(key: string, id: LeaseId, now: number): Promise<boolean | Failed> {
    return (await this.call("renew", key, String(id), now))?.ok;
  }

  async held(key: string, now: number): Promise<number | Failed> {
    return (await this.call("count", key, "", now))?.held;
  }

  async delete(key: string): Promise<void> {
    await this.store.command((c) => c.del(stateKey(this.store.prefix, this.name, key)));
  }

  private async call(op: string, key: string, id: string, now: number): Promise<{ ok: boolean; held: number; retry: number } | undefined> {
    const reply = await this.store.run(CONCURRENCY, [stateKey(this.store.prefix, this.name, key)], [op, nowArg(now), id, this.ttl, String(this.limit), this.floor]);
    if (typeof reply !== "string") return undefined;
    const f = reply.split(" ").map(Number);
    return { ok: f[0] === 1, held: f[1]!, retry: f[2]! };
  }
}
