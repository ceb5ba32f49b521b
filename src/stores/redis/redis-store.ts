/** The Redis store: every algorithm as an atomic Lua script, with a deadline and a failure mode. */
import { Cluster, Redis } from "ioredis";
import type { LimitSpec } from "../../algorithms/limit-spec.js";
import type { Outcome } from "../../algorithms/outcome.js";
import type { PenaltyParams } from "../../algorithms/penalty-box.js";
import { systemClock } from "../../core/clock.js";
import { integerAtLeast, positive } from "../../core/validate.js";
import {
  type AdmitAnswer,
  type AdmitOps,
  FAILED,
  type Failed,
  type LeaseGrant,
  type LeaseRelease,
  type LeaseTableOptions,
  type PenaltyTableOptions,
  type RateOp,
  type Store,
  type TableOptions,
} from "../store.js";
import { admitEach } from "../admit-all.js";
import type { RedisStoreEvents } from "../store-health.js";
import { RemoteStore, type RemoteStoreOptions } from "../remote-store.js";
import { slotOf, validName, validPrefix } from "./key-names.js";
import { scriptSpec } from "./limit-script-spec.js";
import { LuaScript, isNoScript } from "./lua-script.js";
import { RateBatcher, decodeReply, deriveParams, pushGroup } from "./rate-batcher.js";
import { RedisLeaseTable } from "./redis-lease-table.js";
import { ReleaseBatcher } from "./release-batcher.js";
import { RedisPenaltyTable } from "./redis-penalty-table.js";
import { RedisRateTable, nowArg } from "./redis-rate-table.js";
import { RATE_SCRIPT } from "./scripts/rate.js";
import { ADMIT_SCRIPT, RELEASE_ALL_SCRIPT } from "./scripts/admit.js";
import type { RedisCalls, RedisClient } from "./redis-calls.js";

export type { RedisClient } from "./redis-calls.js";

export interface RedisStoreOptions extends RemoteStoreOptions {
  /** A client to use (the caller keeps ownership: `close()` leaves it open). */
  client?: RedisClient;
  /** Where to connect when no client is given (default redis://127.0.0.1:6379). */
  url?: string;
  /** Prepended to every key (default "portcullis:"). No braces. */
  prefix?: string;
  /**
   * Most operations in one script call (default 32). Smaller calls let
   * Redis decide one while this process encodes the next; larger ones
   * spread Redis's fixed cost per call over more decisions.
   */
  maxBatch?: number;
  events?: RedisStoreEvents;
}

const RATE = new LuaScript("rate", RATE_SCRIPT, true);
const ADMIT = new LuaScript("admit", ADMIT_SCRIPT, true);
const RELEASE_ALL = new LuaScript("release-all", RELEASE_ALL_SCRIPT);

/**
 * The shared store: every algorithm runs as an atomic Lua script on Redis,
 * called by EVALSHA (reloaded transparently on NOSCRIPT), with a deadline on
 * every call. When Redis errors, times out or is unreachable the store
 * switches to its failure mode (see StoreHealth) and the limits built on it
 * answer from their fallback; nothing is thrown into the request path.
 */
export class RedisStore extends RemoteStore<"redis"> implements Store<false>, RedisCalls {
  readonly sync = false as const;
  readonly kind = "redis" as const;
  readonly storeTime = true;
  readonly client: RedisClient;
  readonly prefix: string;
  readonly cluster: boolean;
  private readonly batcher: RateBatcher;
  private readonly releases: ReleaseBatcher;
  private readonly ownsClient: boolean;
  private inFlight = 0;
  private closed = false;
  private readonly recoveryListeners = new Set<() => void>();

  constructor(o: RedisStoreOptions = {}) {
    super(o, 50, o.events ?? {}, "redis");
    this.prefix = validPrefix(o.prefix ?? "portcullis:");
    this.ownsClient = o.client === undefined;
    this.client = o.client ?? createClient(o.url ?? "redis://127.0.0.1:6379");
    this.cluster = this.client instanceof Cluster;
    // One listener on the health, fanning out to a set the tables can leave (see onRecovery).
    this.health.onRecovery(() => {
      for (const l of [...this.recoveryListeners]) {
        try {
          l();
        } catch {
          // A faulty listener must not break the others.
        }
      }
    });
    // Without a listener ioredis reports connection errors on stderr; they are health events here.
    this.client.on("error", (err: Error) => this.health.failed(`redis error: ${err.message}`));
    this.client.on("end", () => this.health.failed("redis connection ended"));
    this.batcher = new RateBatcher(
      (keys, args) => this.run(RATE, keys, args),
      integerAtLeast("maxBatch", o.maxBatch ?? 32, 1),
      this.cluster,
    );
    this.releases = new ReleaseBatcher((keys, args) => this.run(RELEASE_ALL, keys, args), integerAtLeast("maxBatch", o.maxBatch ?? 32, 1), this.cluster);
  }

  /**
   * @internal Calls `listener` each time the store returns to Redis after
   * an outage (a penalty box writes back the bans it recorded locally, the
   * guard re-takes its connections' leases). Returns the unsubscribe: a
   * table that is closed (a reload replaced it) must leave, or every reload
   * would leave one more listener behind for the life of the store.
   */
  onRecovery(listener: () => void): () => void {
    const l = (): void => listener();
    this.recoveryListeners.add(l);
    return () => {
      this.recoveryListeners.delete(l);
    };
  }

  /** @internal Listeners waiting for the next return to Redis (bounded by the live tables). */
  get recoveryListenerCount(): number {
    return this.recoveryListeners.size;
  }

  rateTable(name: string, spec: LimitSpec, o: TableOptions = {}): RedisRateTable {
    const floor = positive("keyTtlFloorMs", o.keyTtlFloorMs ?? (o.clockInjected ? 600_000 : 1000));
    return new RedisRateTable(this, validName(name), spec, scriptSpec(spec, Math.ceil(floor)));
  }

  leaseTable(name: string, o: LeaseTableOptions): RedisLeaseTable {
    return new RedisLeaseTable(this, validName(name), o.limit, o.ttlMs, o.clockInjected ? "600000" : "1");
  }

  penaltyTable(name: string, params: PenaltyParams, o: PenaltyTableOptions = {}): RedisPenaltyTable {
    return new RedisPenaltyTable(this, validName(name), params, o);
  }

  /**
   * @internal One rate operation, batched with the others of this tick.
   * Resolves FAILED when Redis did not answer (the limiter falls back).
   */
  rate(key: string, spec: string, cost: number, now: string, flag: string): Promise<Outcome | Failed> {
    if (!this.health.up || this.closed || this.inFlight >= this.maxInFlight) return Promise.resolve(FAILED);
    return this.batcher.add(key, spec, cost, now, flag);
  }

  /**
   * The operations decided in order by one script call: either all consume
   * or, at the first rejection of a limit not in shadow mode, none does.
   * Outcomes up to that rejection; FAILED when Redis did not answer. On
   * Cluster, keys in different slots cannot share a script: see `peekThenCharge`.
   */
  async rateAll(ops: readonly RateOp<false>[]): Promise<Outcome[] | Failed> {
    const tables = ops.map((o) => o.table as RedisRateTable);
    const keys = ops.map((o, i) => tables[i]!.redisKey(o.key));
    const first = this.cluster ? slotOf(keys[0]!) : 0;
    if (this.cluster && keys.some((k) => slotOf(k) !== first)) return this.peekThenCharge(ops, tables, keys);
    const args: string[] = ["all"];
    for (let i = 0; i < ops.length; i++) {
      const o = ops[i]!;
      pushGroup(args, tables[i]!.scriptSpec, nowArg(o.now), o.shadow ? "s" : "0", 1, o.cost === 1 ? undefined : [String(o.cost)]);
    }
    const reply = await this.run(RATE, keys, args);
    if (!(reply instanceof Uint8Array)) return FAILED;
    return decodeReply(reply, (i) => deriveParams(tables[i]!.scriptSpec));
  }

  /**
   * An admission's leases and rates in one script call, all or nothing
   * (scripts/admit.ts). On Cluster, keys in different slots cannot share a
   * script: the operations then run one by one (src/stores/admit-all.ts),
   * the leases taken released again when one refuses.
   */
  async admitAll(ops: AdmitOps<false>): Promise<AdmitAnswer | Failed> {
    const leaseTables = ops.leases.map((o) => o.table as RedisLeaseTable);
    const rateTables = ops.rates.map((o) => o.table as RedisRateTable);
    const keys = ops.leases.map((o, i) => leaseTables[i]!.redisKey(o.key));
    for (let i = 0; i < ops.rates.length; i++) keys.push(rateTables[i]!.redisKey(ops.rates[i]!.key));
    if (keys.length === 0) return { leases: [], rates: [] };
    if (this.cluster && !sameSlot(keys)) return admitEach(this, ops);
    const args: string[] = [String(ops.leases.length)];
    const ids = ops.leases.map((o, i) => leaseTables[i]!.pushAcquire(args, o.now, o.shadow));
    for (let i = 0; i < ops.rates.length; i++) {
      const o = ops.rates[i]!;
      pushGroup(args, rateTables[i]!.scriptSpec, nowArg(o.now), o.shadow ? "s" : "0", 1, o.cost === 1 ? undefined : [String(o.cost)]);
    }
    const reply = await this.run(ADMIT, keys, args);
    if (!(reply instanceof Uint8Array)) return FAILED;
    const view = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
    const leases: LeaseGrant[] = [];
    let at = 0;
    for (let i = 0; i < ops.leases.length && at + 24 <= reply.byteLength; i++, at += 24) {
      const ok = view.getFloat64(at, true) === 1;
      leases.push({ held: ok ? view.getFloat64(at + 8, true) : -1, id: ids[i]!, retryAfterMs: ok ? 0 : view.getFloat64(at + 16, true) });
      if (!ok && !ops.leases[i]!.shadow) return { leases, rates: [] };
    }
    const rates = decodeReply(reply.subarray(at), (i) => deriveParams(rateTables[i]!.scriptSpec));
    return { leases, rates };
  }

  /**
   * Ends several leases in one script call, shared with the other releases
   * of this turn of the event loop (on Cluster, one call per slot).
   */
  async releaseAll(ops: readonly LeaseRelease<false>[]): Promise<boolean[] | Failed> {
    if (!this.health.up || this.closed) return FAILED;
    const r = await Promise.all(ops.map((o) => this.releases.add((o.table as RedisLeaseTable).redisKey(o.key), nowArg(o.now), String(o.id))));
    return r.includes(undefined) ? FAILED : (r as boolean[]);
  }

  /**
   * The cross-slot composite on Cluster: peeks every limit and charges them
   * only if all would allow; when a concurrent check took the room between
   * the two steps and one limit rejects the charge, the others are
   * refunded. A rejected request is then not charged in the end, but for
   * the moment between charge and refund the other limits read fuller than
   * they are.
   */
  private async peekThenCharge(ops: readonly RateOp<false>[], tables: RedisRateTable[], keys: string[]): Promise<Outcome[] | Failed> {
    const stopAt = (outs: (Outcome | Failed)[]): number => outs.findIndex((o, i) => o !== FAILED && !o.allowed && !ops[i]!.shadow);
    const peeks = await Promise.all(ops.map((o, i) => this.rate(keys[i]!, tables[i]!.scriptSpec, o.cost, nowArg(o.now), "1")));
    if (peeks.includes(FAILED)) return FAILED;
    const p = stopAt(peeks);
    if (p >= 0) return peeks.slice(0, p + 1) as Outcome[];
    const charged = await Promise.all(ops.map((o, i) => this.rate(keys[i]!, tables[i]!.scriptSpec, o.cost, nowArg(o.now), "0")));
    const c = stopAt(charged);
    const failed = charged.includes(FAILED);
    if (c >= 0 || failed) {
      // Give back what the limits that allowed took (a shadowed rejection took nothing).
      await Promise.all(charged.map((o, i) => (o !== FAILED && o.allowed ? tables[i]!.refund(ops[i]!.key, ops[i]!.cost, ops[i]!.now) : undefined)));
    }
    if (failed) return FAILED;
    return (c >= 0 ? charged.slice(0, c + 1) : charged) as Outcome[];
  }

  /**
   * @internal Runs `script` with a deadline; resolves its reply, or undefined
   * after a failure (which switches the store to its failure mode). Never rejects.
   */
  async run(script: LuaScript, keys: string[], args: string[]): Promise<unknown> {
    if (!this.health.up || this.closed) return FAILED;
    this.inFlight += keys.length || 1;
    try {
      return await this.withDeadline(this.evalsha(script, keys, args));
    } catch (err) {
      this.health.failed(err instanceof Error ? err.message : String(err));
      return FAILED;
    } finally {
      this.inFlight -= keys.length || 1;
    }
  }

  /** @internal A plain command with the store's deadline; undefined on failure. Never rejects. */
  async command<T>(send: (c: RedisClient) => Promise<T>): Promise<T | undefined> {
    if (!this.health.up || this.closed) return undefined;
    try {
      return await this.withDeadline(send(this.client));
    } catch (err) {
      this.health.failed(err instanceof Error ? err.message : String(err));
      return undefined;
    }
  }

  /**
   * Resolves true once the client is connected (false after `timeoutMs`);
   * on Cluster, once it is connected to every master, since a decision
   * for a slot whose node is still connecting would wait past its deadline
   * or fail. Checks made before that fall back, as they would during an
   * outage.
   */
  async ready(timeoutMs = 2000): Promise<boolean> {
    const deadline = systemClock.now() + timeoutMs;
    const c = this.client;
    if (!(await untilReady(c, timeoutMs))) return false;
    if (c instanceof Cluster) {
      const masters = c.nodes("master");
      const left = Math.max(0, deadline - systemClock.now());
      const up = await Promise.all(masters.map((n) => untilReady(n, left)));
      if (masters.length === 0 || up.includes(false)) return false;
    }
    const ok = this.health.up || (await this.ping());
    if (!ok) return false;
    if (!this.health.up) this.health.recovered("redis answered a readiness check");
    await this.preload(Math.max(0, deadline - systemClock.now()));
    return true;
  }

  /**
   * Loads the admission's scripts on every master, so that the first
   * admission and the first release are not answered NOSCRIPT: the EVAL
   * that follows one would reach Redis after commands sent meanwhile (a
   * connection's release after the next admission). Best effort: a
   * script not loaded here is loaded by its first call.
   */
  private async preload(timeoutMs: number): Promise<void> {
    const c = this.client;
    const nodes = c instanceof Cluster ? c.nodes("master") : [c];
    const load = Promise.all(nodes.map((n) => Promise.all([n.script("LOAD", ADMIT.body), n.script("LOAD", RELEASE_ALL.body)]))).then(
      () => undefined,
      () => undefined,
    );
    let t: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([load, new Promise<void>((r) => (t = setTimeout(r, timeoutMs)))]);
    clearTimeout(t);
  }

  /** Stops probing and, if the store created its client, disconnects it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.health.close();
    if (this.ownsClient) {
      try {
        await this.client.quit();
      } catch {
        this.client.disconnect();
      }
    }
  }

  private async evalsha(script: LuaScript, keys: string[], args: string[]): Promise<unknown> {
    try {
      // One array, flattened by ioredis: no spread of hundreds of arguments.
      if (script.binary) return await (this.client as unknown as BufferScripting).evalshaBuffer(script.sha, keys.length, ...keys, ...args);
      return await this.client.evalsha(script.sha, keys.length, keys.concat(args));
    } catch (err) {
      // After SCRIPT FLUSH or a restart Redis has forgotten the script:
      // EVAL sends it in full, which also caches it for the next EVALSHA.
      if (!isNoScript(err)) throw err;
      if (script.binary) return await (this.client as unknown as BufferScripting).evalBuffer(script.body, keys.length, ...keys, ...args);
      return await this.client.eval(script.body, keys.length, keys.concat(args));
    }
  }

  private withDeadline<T>(p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`redis call timed out after ${this.timeoutMs} ms`)), this.timeoutMs);
      p.then(
        (v) => {
          clearTimeout(t);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(t);
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      );
    });
  }

  protected async ping(): Promise<boolean> {
    if (this.closed) return false;
    try {
      return (await this.withDeadline(this.client.ping())) === "PONG";
    } catch {
      return false;
    }
  }
}

/**
 * The binary-reply forms of EVALSHA and EVAL, which ioredis defines for
 * every command but does not declare. Not `callBuffer`: with
 * `enableAutoPipelining` ioredis drops callBuffer's command name.
 */
interface BufferScripting {
  evalshaBuffer(sha: string, numKeys: number, ...keysAndArgs: string[]): Promise<Buffer>;
  evalBuffer(body: string, numKeys: number, ...keysAndArgs: string[]): Promise<Buffer>;
}

/** Resolves whether `c` is (or, within `timeoutMs`, becomes) ready; starts a connection that was never started. */
function untilReady(c: RedisClient, timeoutMs: number): Promise<boolean> {
  if (c.status === "ready") return Promise.resolve(true);
  return new Promise<boolean>((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      c.off("ready", done);
      resolve(c.status === "ready");
    };
    const t = setTimeout(done, timeoutMs);
    c.once("ready", done);
    // A Cluster's connections to its nodes start lazily, on their first command.
    if (c.status === "wait") c.connect().catch(() => {});
  });
}

/**
 * A client tuned for a decision path: commands fail at once while
 * disconnected instead of queueing (the store falls back), in-flight
 * commands are not retried after a reconnect (their deadline has passed),
 * and reconnection attempts stay frequent so the store is back soon after
 * Redis is.
 */
function createClient(url: string): Redis {
  return new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (times: number) => Math.min(50 * times, 500),
    lazyConnect: false,
  });
}

/** Whether every key hashes to the slot of the first. */
function sameSlot(keys: readonly string[]): boolean {
  const first = slotOf(keys[0]!);
  return keys.every((k) => slotOf(k) === first);
}
