/** The penalty box's state in Redis, with bans spread by pub/sub. */
import { Cluster, type Redis } from "ioredis";
import { msUntil } from "../../algorithms/outcome.js";
import type { PenaltyParams, PenaltyStatus } from "../../algorithms/penalty-box.js";
import { type Clock, systemClock } from "../../core/clock.js";
import { integerAtLeast } from "../../core/validate.js";
import { MemoryPenaltyTable } from "../memory-penalty-table.js";
import type { BanEvent, BanRow, PenaltyFailure, PenaltyTable, PenaltyTableOptions, PenaltyView } from "../store.js";
import { BanCache } from "../ban-cache.js";
import { limitKey, stateKey } from "./key-names.js";
import { LuaScript } from "./lua-script.js";
import { nowArg } from "./redis-rate-table.js";
import type { RedisCalls, RedisClient } from "./redis-calls.js";
import { BAN_LIST_SCRIPT, PENALTY_SCRIPT } from "./scripts/penalty.js";

const PENALTY = new LuaScript("penalty", PENALTY_SCRIPT);
const BAN_LIST = new LuaScript("ban-list", BAN_LIST_SCRIPT);
/** Keys written back per round of calls after an outage (the calls of one round run concurrently). */
const WRITE_BACK_CHUNK = 64;

/**
 * The penalty box's state shared through Redis: failure streaks, back-off and bans
 * are kept in Redis (with a TTL until the key reads as clean), so they hold
 * across gateways and restarts. A ban made by any instance is published and
 * lands in every instance's local cache within milliseconds; an instance
 * that starts (or reconnects) loads the live bans from the box's index.
 * While Redis is unavailable the table records and answers locally (it
 * never answers FAILED); when the store is back on Redis, the bans and
 * forgets made locally are written back (see `writeBack`).
 */
export class RedisPenaltyTable implements PenaltyTable<false> {
  private readonly clock: Clock | undefined;
  private readonly paramString: string;
  private readonly channel: string;
  private readonly index: string;
  private readonly cache: BanCache;
  private readonly local: MemoryPenaltyTable;
  private readonly listeners = new Set<(e: BanEvent) => void>();
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
  private lastLocal = -Infinity;
  private closed = false;
  private readonly leaveRecovery: () => void;

  constructor(
    private readonly store: RedisCalls,
    readonly name: string,
    readonly params: PenaltyParams,
    o: PenaltyTableOptions,
  ) {
    this.clock = o.clock;
    const p = this.params;
    const floor = o.clockInjected ? 600_000 : 1000;
    this.paramString = [p.throttleAfter, p.backoffBaseMs, p.backoffMaxMs, p.banFailures, p.banWindowMs, p.banDurationMs, p.banMultiplier, p.banMaxMs, p.retentionMs, floor].join(" ");
    this.channel = limitKey(this.store.prefix, this.name, "events");
    this.index = limitKey(this.store.prefix, this.name, "bans");
    this.cache = new BanCache(integerAtLeast("maxCachedBans", o.maxCachedBans ?? 100_000, 1));
    this.local = new MemoryPenaltyTable(`${name}:local`, p, integerAtLeast("maxKeys", o.maxKeys ?? 65_536, 1));
    this.maxPendingForgets = this.local.maxKeys;
    this.leaveRecovery = this.store.onRecovery(() => {
      if (this.closed) return;
      void this.writeBack();
      // Bans published while this instance could not hear them: reconcile from the index.
      if (this.subscriber !== undefined) void this.reload();
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
    return this.localBanWait(key) > 0;
  }

  onBanEvent(listener: (e: BanEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Ban and back-off ends of `key`: a cached ban answers without I/O. */
  async check(key: string, now: number): Promise<PenaltyView> {
    const t = this.storeNow(now);
    const until = this.cache.until(key, t);
    if (until !== undefined) return { streak: 0, throttledUntil: -Infinity, bannedUntil: until, bans: 0, now: t };
    const mark = this.cache.mark();
    const st = await this.run("status", key, "", now);
    if (st === undefined) return this.onStoreClock(this.local.check(key, this.localNow(now)), now);
    if (st.bannedUntil > st.now) {
      this.cache.learn(key, st.bannedUntil, mark);
      return st;
    }
    // A ban made locally during an outage and not written back yet still holds.
    const localWait = this.localBanWait(key);
    if (localWait > 0) return { ...st, bannedUntil: st.now + localWait };
    return st;
  }

  async status(key: string, now: number): Promise<PenaltyView> {
    const st = await this.run("status", key, "", now);
    return st === undefined ? this.onStoreClock(this.local.status(key, this.localNow(now)), now) : st;
  }

  async failure(key: string, now: number): Promise<PenaltyFailure> {
    const mark = this.cache.mark();
    const st = await this.run("fail", key, "", now);
    if (st === undefined) return this.onStoreClock(this.local.failure(key, this.localNow(now)), now);
    if (st.started) this.banned_(key, st.bannedUntil, mark);
    return { ...st, banned: st.started, saturated: false };
  }

  /** Bans `key` now, for `durationMs` or the escalating length. Returns the ban's end in store time. */
  async ban(key: string, durationMs: number | undefined, now: number): Promise<number> {
    const d = durationMs === undefined ? "" : String(durationMs);
    const mark = this.cache.mark();
    const st = await this.run("ban", key, d, now);
    if (st === undefined) {
      const l = this.localNow(now);
      return this.local.ban(key, durationMs, l) + this.localToStore(l, now);
    }
    this.banned_(key, st.bannedUntil, mark);
    return st.bannedUntil;
  }

  /** Lifts a ban and clears the key's record, on every instance. */
  async forget(key: string, now: number): Promise<boolean> {
    this.cache.lift(key);
    const local = this.local.forget(key);
    // The index entry goes before the lift (sent first on the same connection): a reload by another gateway (its
    // start, a reconnect) cannot find it once the lift is done, even if this instance is gone before the removal
    // below. A key missing from the index is only read from Redis; a lifted key left in it would be cached as banned.
    this.unindex(key);
    const reply = await this.store.run(PENALTY, [this.stateKey(key)], ["forget", nowArg(now), this.paramString, "", this.channel, key]);
    if (typeof reply !== "string") {
      // Redis did not hear it: forget the key there too once it is back.
      this.forgetLater(key);
      return local;
    }
    this.pendingForgets.delete(key);
    // Again after: a ban by another instance between the first removal and the lift wrote the entry back.
    this.unindex(key);
    return reply.startsWith("1") || local;
  }

  /** Removes `key` from the ban index; not awaited (a lift does not wait on its index). */
  private unindex(key: string): void {
    void this.store.command((c) => c.zrem(this.index, key));
  }

  /**
   * Live bans with their end (store time): from Redis, or the local cache
   * while Redis is unavailable; bans made locally and not written back yet
   * are included.
   */
  async banned(now: number): Promise<BanRow[]> {
    await this.reload(now);
    const t = this.storeNow(now);
    const rows = new Map(this.cache.entries(t));
    const l = this.localNow(now);
    for (const b of this.local.banned(l)) {
      const until = t + (b.bannedUntil - l);
      if (!((rows.get(b.key) ?? -Infinity) >= until)) rows.set(b.key, until);
    }
    return [...rows].map(([key, bannedUntil]) => ({ key, bannedUntil }));
  }

  /** Bans and forgets recorded locally while Redis was unavailable and not written back yet (O(n)). */
  get pendingWriteBack(): number {
    return this.pendingForgets.size + this.local.banned(this.localNow(Number.NaN)).length;
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

  /** Unsubscribes, disconnects the subscriber and stops listening for recoveries (the store stays open). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.leaveRecovery();
    const sub = this.subscriber;
    this.subscriber = undefined;
    sub?.disconnect();
  }

  /**
   * The table's reading of store time: `now` when the limit sent one, else
   * the injected clock, or wall time corrected by the skew to Redis.
   */
  storeNow(now = Number.NaN): number {
    if (!Number.isNaN(now)) return now;
    if (this.clock !== undefined) {
      const t = this.clock.now();
      if (t > this.lastNow) this.lastNow = t;
      return this.lastNow;
    }
    return systemClock.wallNow() + this.skew;
  }

  /** Time on the local box's clock: the limit's injected clock, or the local clock (clamped). */
  private localNow(now: number): number {
    const t = Number.isNaN(now) ? (this.clock ?? systemClock).now() : now;
    if (t > this.lastLocal) this.lastLocal = t;
    return this.lastLocal;
  }

  /**
   * How far the store's clock is ahead of the local box's at local time
   * `local`: 0 when the limit sent its own time (an injected clock drives
   * both), else store time (Redis TIME, as last learned) minus the local
   * monotonic clock.
   */
  private localToStore(local: number, now: number): number {
    return Number.isNaN(now) ? this.storeNow() - local : 0;
  }

  /**
   * A local answer given on the store's clock, like every other answer of
   * this table: its callers compare its ends with the store's time (a ban's
   * end in the log, a lockout's "still locked"), which a monotonic reading
   * would put decades in the past.
   */
  private onStoreClock<T extends PenaltyView>(v: T, now: number): T {
    const shift = this.localToStore(v.now, now);
    if (shift === 0) return v;
    return { ...v, now: v.now + shift, throttledUntil: v.throttledUntil + shift, bannedUntil: v.bannedUntil + shift };
  }

  private stateKey(key: string): string {
    return stateKey(this.store.prefix, this.name, key);
  }

  private nowArg(): string {
    return this.clock === undefined ? "" : String(this.storeNow());
  }

  /** The ms a live ban of the local box has left (0 when none). */
  private localBanWait(key: string): number {
    const now = this.localNow(Number.NaN);
    const st = this.local.status(key, now);
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
    const bans = this.local.banned(this.localNow(Number.NaN));
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
  private async writeBackBans(chunk: BanRow[]): Promise<boolean> {
    if (this.closed || this.store.mode !== "redis") return false;
    const t = this.localNow(Number.NaN);
    // A ban that has ended since the list was taken has nothing left to write.
    const live = chunk.filter((b) => b.bannedUntil > t);
    if (live.length === 0) return true;
    const resets = live.map((b) => this.pendingForgets.get(b.key));
    const mark = this.cache.mark();
    const replies = await Promise.all(
      live.map((b, i) => this.run("restore", b.key, String(b.bannedUntil - t), Number.NaN, String(b.bans ?? 0), resets[i] === undefined ? "0" : "1")),
    );
    const written: { key: string; localUntil: number; until: number }[] = [];
    for (let i = 0; i < live.length; i++) {
      const st = replies[i];
      if (st === undefined) continue;
      const key = live[i]!.key;
      if (resets[i] !== undefined && this.pendingForgets.get(key) === resets[i]) this.pendingForgets.delete(key);
      if (!(st.bannedUntil > st.now)) continue;
      // Lifted while it was written (the lift's event also cleared the local ban): nothing to index.
      if (!this.cache.learn(key, st.bannedUntil, mark)) continue;
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
        if (!(this.local.status(w.key, t).bannedUntil > w.localUntil)) this.local.forget(w.key);
      }
    }
    return replies.every((st) => st !== undefined);
  }

  /** A ban this instance made, by a call begun at `mark`: cached and indexed, unless it was lifted meanwhile. */
  private banned_(key: string, until: number, mark: number): void {
    // A lift heard since is newer: indexing the ban now would outlive the lift's removal from the index.
    if (!this.cache.learn(key, until, mark)) return;
    void this.store.command((c) => c.zadd(this.index, until, key));
  }

  private async run(op: string, key: string, duration: string, now: number, ...restore: string[]): Promise<(PenaltyStatus & { started: boolean; now: number }) | undefined> {
    const args = [op, Number.isNaN(now) ? this.nowArg() : String(now), this.paramString, duration, this.channel, key, ...restore];
    const reply = await this.store.run(PENALTY, [this.stateKey(key)], args);
    if (typeof reply !== "string") return undefined;
    // Redis now holds a newer record of the key than a forget made during an outage.
    if (op === "fail" || op === "ban") this.pendingForgets.delete(key);
    const f = reply.split(" ").map(luaNumber);
    const at = f[5]!;
    this.learnSkew(at);
    return { streak: f[0]!, throttledUntil: f[1]!, bannedUntil: f[2]!, bans: f[3]!, started: f[4] === 1, now: at };
  }

  private learnSkew(storeNow: number): void {
    if (this.clock === undefined) this.skew = storeNow - systemClock.wallNow();
  }

  private async reload(now = Number.NaN): Promise<boolean> {
    const reply = await this.store.run(BAN_LIST, [this.index], [Number.isNaN(now) ? this.nowArg() : String(now)]);
    if (!Array.isArray(reply) || reply.length === 0) return false;
    this.learnSkew(Number(reply[0]));
    const t = Number(reply[0]);
    const rows: [string, number][] = [];
    for (let i = 1; i + 1 < reply.length; i += 2) rows.push([String(reply[i]), Number(reply[i + 1])]);
    // A ban this instance did not know (its broadcast was missed) is reported like a broadcast one;
    // a key lifted lately is left out (the cache says why), and a check reads it from Redis.
    const missed = rows.filter(([key]) => this.cache.until(key, t) === undefined && !this.cache.liftedLately(key));
    this.cache.replace(rows);
    for (const [key, until] of missed) this.emit({ kind: "ban", key, until });
    return true;
  }

  private onMessage(message: string): void {
    if (message.startsWith("u ")) {
      const key = message.slice(2);
      this.cache.lift(key);
      this.local.forget(key);
      this.emit({ kind: "forget", key });
    } else if (message.startsWith("b ")) {
      const sp = message.indexOf(" ", 2);
      if (sp < 0) return;
      const until = Number(message.slice(2, sp));
      if (!Number.isFinite(until)) return;
      const key = message.slice(sp + 1);
      this.cache.set(key, until);
      this.emit({ kind: "ban", key, until });
    }
  }

  private emit(e: BanEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // A faulty listener must not break the others or the message handling.
      }
    }
  }
}

/** A number as the scripts print it ('-inf' and 'inf' for the infinities). */
function luaNumber(v: string): number {
  return v === "-inf" ? -Infinity : v === "inf" ? Infinity : Number(v);
}

function duplicate(client: RedisClient): Redis {
  // Cluster and Redis both speak SUBSCRIBE; the cast only merges their overloads.
  // Like a single node's, the subscriber queues its SUBSCRIBE until connected.
  if (client instanceof Cluster) return client.duplicate([], { enableOfflineQueue: true }) as unknown as Redis;
  return client.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null });
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
