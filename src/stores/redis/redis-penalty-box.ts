import { msUntil } from "../../algorithms/outcome.js";
import { type PenaltyOptions, type PenaltyParams, type PenaltyStatus, penaltyParams } from "../../algorithms/penalty-box.js";
import { Cluster, type Redis } from "ioredis";
import { type Clock, systemClock } from "../../core/clock.js";
import { InvalidArgumentError } from "../../core/errors.js";
import { integerAtLeast, nonNegative } from "../../core/validate.js";
import { Decision } from "../../limiter/decision.js";
import { type FailureResult, PenaltyBox } from "../../limiter/penalty-box.js";
import { BanCache } from "./ban-cache.js";
import { limitKey, stateKey, validName } from "./keys.js";
import { LuaScript } from "./lua-script.js";
import type { RedisClient, RedisStore } from "./redis-store.js";
import { BAN_LIST_SCRIPT, PENALTY_SCRIPT } from "./scripts/penalty.js";

const PENALTY = new LuaScript("penalty", PENALTY_SCRIPT);
const BAN_LIST = new LuaScript("ban-list", BAN_LIST_SCRIPT);

export interface RedisPenaltyBoxOptions extends PenaltyOptions {
  store: RedisStore;
  /** Name of the box; boxes of the same name on one Redis share their bans. */
  name?: string;
  /** A clock to use instead of Redis TIME (tests). */
  clock?: Clock;
  shadow?: boolean;
  /** Most bans cached locally (default 100,000). */
  maxCachedBans?: number;
  /** Most keys of the local box used while Redis is unavailable (default 65,536). */
  insuranceMaxKeys?: number;
}

/**
 * The penalty box shared through Redis: failure streaks, back-off and bans
 * are kept in Redis (with a TTL until the key reads as clean), so they hold
 * across gateways and restarts. A ban made by any instance is published and
 * lands in every instance's local cache within milliseconds; an instance
 * that starts (or reconnects) loads the live bans from the box's index.
 * While Redis is unavailable the box records and answers locally.
 */
export class RedisPenaltyBox {
  readonly name: string;
  readonly params: PenaltyParams;
  readonly shadow: boolean;
  private readonly store: RedisStore;
  private readonly clock: Clock | undefined;
  private readonly paramString: string;
  private readonly channel: string;
  private readonly index: string;
  private readonly cache: BanCache;
  private readonly local: PenaltyBox;
  private subscriber: Redis | undefined;
  /** Store time minus this host's wall time, learned from every reply (Redis TIME mode). */
  private skew = 0;
  private lastNow = -Infinity;
  private closed = false;

  constructor(o: RedisPenaltyBoxOptions) {
    this.params = penaltyParams(o);
    this.store = o.store;
    this.name = validName(o.name ?? o.store.generateName("penalty"));
    this.shadow = o.shadow ?? false;
    this.clock = o.clock;
    const p = this.params;
    const floor = o.clock === undefined ? 1000 : 600_000;
    this.paramString = [p.throttleAfter, p.backoffBaseMs, p.backoffMaxMs, p.banFailures, p.banWindowMs, p.banDurationMs, p.banMultiplier, p.banMaxMs, p.retentionMs, floor].join(" ");
    this.channel = limitKey(this.store.prefix, this.name, "events");
    this.index = limitKey(this.store.prefix, this.name, "bans");
    this.cache = new BanCache(integerAtLeast("maxCachedBans", o.maxCachedBans ?? 100_000, 1));
    this.local = new PenaltyBox({ ...o, maxKeys: o.insuranceMaxKeys ?? 65_536, clock: o.clock ?? systemClock, shadow: this.shadow });
  }

  /**
   * Subscribes to the box's ban events and loads the live bans. Resolves
   * false if Redis did not answer in time (the box then works locally and
   * loads the list when Redis is back).
   */
  async start(timeoutMs = 2000): Promise<boolean> {
    let sub = this.subscriber;
    if (sub === undefined) {
      // A connection of its own (a subscribed connection can do nothing else);
      // its subscribe may wait for the connection, unlike decision calls.
      sub = duplicate(this.store.client);
      this.subscriber = sub;
      sub.on("error", () => {
        // Reconnection is ioredis's job; a lost subscription is repaired on "ready".
      });
      sub.on("message", (channel: string, message: string) => {
        if (channel === this.channel) this.onMessage(message);
      });
      let first = true;
      sub.on("ready", () => {
        // After a reconnect, messages may have been missed: reload the list.
        if (!first) void this.reload();
        first = false;
      });
    }
    const ok = await withTimeout(sub.subscribe(this.channel).then(() => true), timeoutMs);
    return ok && (await this.reload());
  }

  /** True when `key` is banned now according to the local cache (no I/O). */
  isBanned(key: string): boolean {
    return this.cache.until(key, this.storeNow()) !== undefined;
  }

  /** Whether `key` may try now: banned, throttled (backing off) or allowed. */
  async check(key: string): Promise<Decision> {
    if (typeof key !== "string") throw new InvalidArgumentError("key", "must be a string");
    const now = this.storeNow();
    const until = this.cache.until(key, now);
    if (until !== undefined) return this.decision("banned", msUntil(now, until));
    const st = await this.run("status", key, "");
    if (st === undefined) return this.local.check(key);
    if (st.bannedUntil > st.now) {
      this.cache.set(key, st.bannedUntil);
      return this.decision("banned", msUntil(st.now, st.bannedUntil));
    }
    if (st.throttledUntil > st.now) return this.decision("throttled", msUntil(st.now, st.throttledUntil));
    return new Decision(true, 0, 0, 0, 0, undefined, false, false);
  }

  async status(key: string): Promise<PenaltyStatus> {
    const st = await this.run("status", key, "");
    return st === undefined ? this.local.status(key) : strip(st);
  }

  async recordFailure(key: string): Promise<FailureResult> {
    if (typeof key !== "string") throw new InvalidArgumentError("key", "must be a string");
    const st = await this.run("fail", key, "");
    if (st === undefined) return this.local.recordFailure(key);
    if (st.started) this.banned_(key, st.bannedUntil);
    return { ...strip(st), banned: st.started, saturated: false };
  }

  /** A success clears the key. */
  async recordSuccess(key: string): Promise<void> {
    await this.forget(key);
  }

  /** Bans `key` now, for `durationMs` or the escalating length. Returns the ban's end in store time. */
  async ban(key: string, durationMs?: number): Promise<number> {
    if (typeof key !== "string") throw new InvalidArgumentError("key", "must be a string");
    const d = durationMs === undefined ? "" : String(nonNegative("durationMs", durationMs));
    const st = await this.run("ban", key, d);
    if (st === undefined) return this.local.ban(key, durationMs);
    this.banned_(key, st.bannedUntil);
    return st.bannedUntil;
  }

  /** Lifts a ban and clears the key's record, on every instance. */
  async forget(key: string): Promise<boolean> {
    if (typeof key !== "string") throw new InvalidArgumentError("key", "must be a string");
    this.cache.delete(key);
    const local = this.local.forget(key);
    const reply = await this.store.run(PENALTY, [this.stateKey(key)], ["forget", this.nowArg(), this.paramString, "", this.channel, key]);
    if (typeof reply !== "string") return local;
    void this.store.command((c) => c.zrem(this.index, key));
    return reply.startsWith("1") || local;
  }

  /** Live bans with their end (store time): from Redis, or the local cache while Redis is unavailable. */
  async banned(): Promise<{ key: string; bannedUntil: number }[]> {
    if (await this.reload()) return [...this.cache.entries(this.storeNow())].map(([key, bannedUntil]) => ({ key, bannedUntil }));
    const now = this.storeNow();
    return [...this.cache.entries(now)].map(([key, bannedUntil]) => ({ key, bannedUntil }));
  }

  /** Unsubscribes and disconnects the subscriber (the store stays open). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const sub = this.subscriber;
    this.subscriber = undefined;
    sub?.disconnect();
  }

  /** The box's reading of store time: the injected clock, or wall time corrected by the skew to Redis. */
  storeNow(): number {
    if (this.clock !== undefined) {
      const t = this.clock.now();
      if (t > this.lastNow) this.lastNow = t;
      return this.lastNow;
    }
    return systemClock.wallNow() + this.skew;
  }

  private stateKey(key: string): string {
    return stateKey(this.store.prefix, this.name, key);
  }

  private nowArg(): string {
    return this.clock === undefined ? "" : String(this.storeNow());
  }

  private decision(reason: "banned" | "throttled", wait: number): Decision {
    if (this.shadow) return new Decision(true, 0, 0, wait, 0, reason, true, true);
    return new Decision(false, 0, 0, wait, wait, reason, true, false);
  }

  private banned_(key: string, until: number): void {
    this.cache.set(key, until);
    void this.store.command((c) => c.zadd(this.index, until, key));
  }

  private async run(op: string, key: string, duration: string): Promise<(PenaltyStatus & { started: boolean; now: number }) | undefined> {
    const reply = await this.store.run(PENALTY, [this.stateKey(key)], [op, this.nowArg(), this.paramString, duration, this.channel, key]);
    if (typeof reply !== "string") return undefined;
    const f = reply.split(" ").map(Number);
    const now = f[5]!;
    this.learnSkew(now);
    return { streak: f[0]!, throttledUntil: f[1]!, bannedUntil: f[2]!, bans: f[3]!, started: f[4] === 1, now };
  }

  private learnSkew(storeNow: number): void {
    if (this.clock === undefined) this.skew = storeNow - systemClock.wallNow();
  }

  private async reload(): Promise<boolean> {
    const reply = await this.store.run(BAN_LIST, [this.index], [this.nowArg()]);
    if (!Array.isArray(reply) || reply.length === 0) return false;
    this.learnSkew(Number(reply[0]));
    const rows: [string, number][] = [];
    for (let i = 1; i + 1 < reply.length; i += 2) rows.push([String(reply[i]), Number(reply[i + 1])]);
    this.cache.replace(rows);
    return true;
  }

  private onMessage(message: string): void {
    if (message.startsWith("u ")) {
      const key = message.slice(2);
      this.cache.delete(key);
      this.local.forget(key);
    } else if (message.startsWith("b ")) {
      const sp = message.indexOf(" ", 2);
      if (sp < 0) return;
      const until = Number(message.slice(2, sp));
      if (Number.isFinite(until)) this.cache.set(message.slice(sp + 1), until);
    }
  }
}

function duplicate(client: RedisClient): Redis {
  // Cluster and Redis both speak SUBSCRIBE; the cast only merges their overloads.
  if (client instanceof Cluster) return client.duplicate() as unknown as Redis;
  return client.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null });
}

function strip(st: PenaltyStatus): PenaltyStatus {
  return { streak: st.streak, throttledUntil: st.throttledUntil, bannedUntil: st.bannedUntil, bans: st.bans };
}

function withTimeout(p: Promise<boolean>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      () => {
        clearTimeout(t);
        resolve(false);
      },
    );
  });
}
