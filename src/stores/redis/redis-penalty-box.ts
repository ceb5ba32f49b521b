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
/** Keys written back per round of calls after an outage (the calls of one round run concurrently). */
const WRITE_BACK_CHUNK = 64;

export interface RedisPenaltyBoxOptions extends PenaltyOptions {
  store: RedisStore;
  /** Name of the box; boxes of the same name on one Redis share their bans. */
  name?: string;
  /** A clock to use instead of Redis TIME (tests). */
  clock?: Clock;
  shadow?: boolean;
  /** Most bans cached locally (default 100,000). */
  maxCachedBans?: number;
  /**
   * Most keys of the local box used while Redis is unavailable, and most
   * forgets made then that wait to be written back (default 65,536).
   */
  insuranceMaxKeys?: number;
}

/**
 * The penalty box shared through Redis: failure streaks, back-off and bans
 * are kept in Redis (with a TTL until the key reads as clean), so they hold
 * across gateways and restarts. A ban made by any instance is published and
 * lands in every instance's local cache within milliseconds; an instance
 * that starts (or reconnects) loads the live bans from the box's index.
 * While Redis is unavailable the box records and answers locally; when the
 * store is back on Redis, the bans and forgets made locally are written back
 * (see `writeBack`).
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
  /** Keys forgotten while Redis was unavailable (key → sequence number, oldest first), to forget in Redis too. */
  private readonly pendingForgets = new Map<string, number>();
  private readonly maxPendingForgets: number;
  private forgetSeq = 0;
  private writing: Promise<boolean> | undefined;
  private writeAgain = false;
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
    this.maxPendingForgets = this.local.maxKeys;
    this.store.onRecovery(() => {
      if (!this.closed) void this.writeBack();
    });
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

  /** True when `key` is banned now according to the local cache or a local ban not yet written back (no I/O). */
  isBanned(key: string): boolean {
    if (this.cache.until(key, this.storeNow()) !== undefined) return true;
    return typeof key === "string" && this.localBanWait(key) > 0;
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
    // A ban made locally during an outage and not written back yet still holds.
    const localWait = this.localBanWait(key);
    if (localWait > 0) return this.decision("banned", localWait);
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
    if (typeof reply !== "string") {
      // Redis did not hear it: forget the key there too once it is back.
      this.forgetLater(key);
      return local;
    }
    this.pendingForgets.delete(key);
    void this.store.command((c) => c.zrem(this.index, key));
    return reply.startsWith("1") || local;
  }

  /**
   * Live bans with their end (store time): from Redis, or the local cache
   * while Redis is unavailable; bans made locally and not written back yet
   * are included.
   */
  async banned(): Promise<{ key: string; bannedUntil: number }[]> {
    await this.reload();
    const now = this.storeNow();
    const rows = new Map(this.cache.entries(now));
    const t = this.local.now();
    for (const b of this.local.banned()) {
      const until = now + (b.bannedUntil - t);
      if (!((rows.get(b.key) ?? -Infinity) >= until)) rows.set(b.key, until);
    }
    return [...rows].map(([key, bannedUntil]) => ({ key, bannedUntil }));
  }

  /** Bans and forgets recorded locally while Redis was unavailable and not written back yet (O(n)). */
  get pendingWriteBack(): number {
    let n = this.pendingForgets.size;
    const bans = this.local.banned();
    while (bans.next().done !== true) n++;
    return n;
  }

  /**
   * Writes back to Redis what was recorded locally while it was
   * unavailable; called by the store on every return to Redis. First the
   * forgets, then every live local ban (a key forgotten and banned again
   * ends up with the new ban only): each keeps its end (the time it has left, not a
   * new full ban; the later end wins if Redis holds one), is published like
   * any ban, joins the ban index, and leaves the local box. Works in rounds
   * of a bounded number of calls. Never rejects: if Redis fails again on the
   * way, the rest stays local and is written back on the next return.
   * Resolves true when nothing is left to write back.
   */
  writeBack(): Promise<boolean> {
    if (this.writing !== undefined) {
      this.writeAgain = true;
      return this.writing;
    }
    this.writing = this.writeBackRounds();
    return this.writing;
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

  /** The ms a live ban of the local box has left (0 when none). */
  private localBanWait(key: string): number {
    const st = this.local.status(key);
    const now = this.local.now();
    return st.bannedUntil > now ? msUntil(now, st.bannedUntil) : 0;
  }

  private forgetLater(key: string): void {
    this.pendingForgets.delete(key);
    this.pendingForgets.set(key, ++this.forgetSeq);
    if (this.pendingForgets.size > this.maxPendingForgets) {
      const oldest = this.pendingForgets.keys().next();
      if (!oldest.done) this.pendingForgets.delete(oldest.value);
    }
  }

  private async writeBackRounds(): Promise<boolean> {
    try {
      let done: boolean;
      do {
        this.writeAgain = false;
        done = await this.writeBackOnce();
      } while (this.writeAgain && !this.closed && this.store.mode === "redis");
      return done;
    } catch {
      return false;
    } finally {
      // Cleared before the promise settles, so a recovery right after starts a new run.
      this.writing = undefined;
    }
  }

  private async writeBackOnce(): Promise<boolean> {
    if (this.closed) return false;
    // A key forgotten and then banned again locally is written back in one
    // call that replaces Redis's record: a forget published first would come
    // back to this box's own subscriber and clear the local ban, which must
    // stay if Redis fails again before it is written.
    const bans = [...this.local.banned()];
    const banned = new Set(bans.map((b) => b.key));
    const forgets = [...this.pendingForgets].filter(([key]) => !banned.has(key));
    for (let i = 0; i < forgets.length; i += WRITE_BACK_CHUNK) {
      if (!(await this.writeBackForgets(forgets.slice(i, i + WRITE_BACK_CHUNK)))) return false;
    }
    for (let i = 0; i < bans.length; i += WRITE_BACK_CHUNK) {
      if (!(await this.writeBackBans(bans.slice(i, i + WRITE_BACK_CHUNK)))) return false;
    }
    return this.pendingWriteBack === 0;
  }

  /** One round of forgets; false if Redis failed (the failed ones stay pending). */
  private async writeBackForgets(chunk: [string, number][]): Promise<boolean> {
    if (this.closed || this.store.mode !== "redis") return false;
    // A key forgotten again (or banned in Redis) since the list was taken is not this round's business.
    const live = chunk.filter(([key, seq]) => this.pendingForgets.get(key) === seq);
    if (live.length === 0) return true;
    const replies = await Promise.all(
      live.map(([key]) => this.store.run(PENALTY, [this.stateKey(key)], ["forget", this.nowArg(), this.paramString, "", this.channel, key])),
    );
    const done = live.filter((_, i) => typeof replies[i] === "string");
    if (done.length > 0) {
      const removed = await this.store.command((c) => c.zrem(this.index, ...done.map(([key]) => key)));
      // Until the index forgets them too they stay pending (a reload would bring them back).
      if (removed === undefined) return false;
      for (const [key, seq] of done) if (this.pendingForgets.get(key) === seq) this.pendingForgets.delete(key);
    }
    return done.length === live.length;
  }

  /** One round of bans; false if Redis failed (the failed ones stay in the local box). */
  private async writeBackBans(chunk: { key: string; bannedUntil: number; bans: number }[]): Promise<boolean> {
    if (this.closed || this.store.mode !== "redis") return false;
    const t = this.local.now();
    // A ban that has ended since the list was taken has nothing left to write.
    const live = chunk.filter((b) => b.bannedUntil > t);
    if (live.length === 0) return true;
    const resets = live.map((b) => this.pendingForgets.get(b.key));
    const replies = await Promise.all(
      live.map((b, i) => this.run("restore", b.key, String(b.bannedUntil - t), String(b.bans), resets[i] === undefined ? "0" : "1")),
    );
    const written: { key: string; localUntil: number; until: number }[] = [];
    for (let i = 0; i < live.length; i++) {
      const st = replies[i];
      if (st === undefined) continue;
      const key = live[i]!.key;
      if (resets[i] !== undefined && this.pendingForgets.get(key) === resets[i]) this.pendingForgets.delete(key);
      if (!(st.bannedUntil > st.now)) continue;
      this.cache.set(key, st.bannedUntil);
      written.push({ key, localUntil: live[i]!.bannedUntil, until: st.bannedUntil });
    }
    if (written.length > 0) {
      const args: (string | number)[] = [];
      for (const w of written) args.push(w.until, w.key);
      const added = await this.store.command((c) => c.zadd(this.index, ...args));
      // Without its index entry a restarted instance would not load the ban: keep it local and retry.
      if (added === undefined) return false;
      for (const w of written) {
        // Unless the key was banned again locally meanwhile (Redis failed again), the local ban is now Redis's.
        if (!(this.local.status(w.key).bannedUntil > w.localUntil)) this.local.forget(w.key);
      }
    }
    return replies.every((st) => st !== undefined);
  }

  private decision(reason: "banned" | "throttled", wait: number): Decision {
    if (this.shadow) return new Decision(true, 0, 0, wait, 0, reason, true, true);
    return new Decision(false, 0, 0, wait, wait, reason, true, false);
  }

  private banned_(key: string, until: number): void {
    this.cache.set(key, until);
    void this.store.command((c) => c.zadd(this.index, until, key));
  }

  private async run(op: string, key: string, duration: string, ...restore: string[]): Promise<(PenaltyStatus & { started: boolean; now: number }) | undefined> {
    const args = [op, this.nowArg(), this.paramString, duration, this.channel, key, ...restore];
    const reply = await this.store.run(PENALTY, [this.stateKey(key)], args);
    if (typeof reply !== "string") return undefined;
    // Redis now holds a newer record of the key than a forget made during an outage.
    if (op === "fail" || op === "ban") this.pendingForgets.delete(key);
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
  // Like a single node's, the subscriber queues its SUBSCRIBE until connected.
  if (client instanceof Cluster) return client.duplicate([], { enableOfflineQueue: true }) as unknown as Redis;
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
