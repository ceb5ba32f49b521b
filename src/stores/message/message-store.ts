/** The message store: limits whose state lives in another process or thread. */
import type { LimitSpec } from "../../algorithms/limit-spec.js";
import { Outcome, type RejectReason } from "../../algorithms/outcome.js";
import type { PenaltyParams } from "../../algorithms/penalty-box.js";
import { systemClock } from "../../core/clock.js";
import { InvalidArgumentError } from "../../core/errors.js";
import { integerAtLeast } from "../../core/validate.js";
import { BanCache } from "../ban-cache.js";
import {
  type BanEvent,
  type BanRow,
  FAILED,
  type Failed,
  type LeaseGrant,
  type LeaseId,
  type LeaseTable,
  type LeaseTableOptions,
  type PenaltyFailure,
  type PenaltyTable,
  type PenaltyTableOptions,
  type PenaltyView,
  type RateOp,
  type RateTable,
  type Store,
} from "../store.js";
import type { StoreEvents } from "../store-health.js";
import { RemoteStore, type RemoteStoreOptions } from "../remote-store.js";
import type { MessageChannel } from "./channel.js";
import { type EventPush, type Reply, type Request, UNKNOWN_TABLE, WIRE, type WireOutcome, decode, encode, isWire } from "./wire.js";

export interface MessageStoreOptions extends RemoteStoreOptions {
  /** The channel to the process holding the state (see channel.ts for adapters). */
  channel: MessageChannel;
  /** Most operations in one message (default 256). */
  maxBatch?: number;
  /** Most bans cached locally per box (default 100,000). */
  maxCachedBans?: number;
  events?: StoreEvents<"remote">;
}

interface Pending {
  ops: unknown[][];
  resolvers: ((r: unknown) => void)[];
}

/** A message sent and not answered yet. */
interface Batch {
  resolvers: ((r: unknown) => void)[];
  timer: ReturnType<typeof setTimeout>;
  /** Ops it counts against maxInFlight (a probe counts none). */
  counted: number;
}

/**
 * A store whose state lives in another process or thread (a primary holding
 * the limits of its workers): every operation is a message to a
 * MessageStoreHost, which answers from its MemoryStore. The operations of
 * one tick travel in one message; every message has a deadline, and a
 * missed one counts as a store failure, so the limiters' failure modes
 * apply (insurance by default) while a probe pings the host.
 */
export class MessageStore extends RemoteStore<"remote"> implements Store<false> {
  readonly sync = false as const;
  readonly kind = "message" as const;
  readonly storeTime = true;
  private readonly maxBatch: number;
  private readonly maxCachedBans: number;
  private readonly inFlight = new Map<number, Batch>();
  private readonly boxes = new Map<number, MessagePenaltyTable>();
  private readonly stopListening: () => void;
  private pending: Pending | undefined;
  private waiting = 0;
  private nextBatch = 1;
  private nextTable = 1;
  /** Tables the host knows (cleared when it answers that it does not: a restarted host). */
  private defined = new Set<number>();
  private closed = false;

  constructor(private readonly o: MessageStoreOptions) {
    super(o, 100, o.events ?? {}, "remote");
    this.maxBatch = integerAtLeast("maxBatch", o.maxBatch ?? 256, 1);
    this.maxCachedBans = integerAtLeast("maxCachedBans", o.maxCachedBans ?? 100_000, 1);
    this.stopListening = o.channel.onMessage((m) => this.onMessage(m));
    // The host that answers again may be a new one that knows no table yet.
    this.health.onRecovery(() => this.defined.clear());
  }

  /** Resolves true once the host answers (false after `timeoutMs`). */
  async ready(timeoutMs = 2000): Promise<boolean> {
    const deadline = systemClock.now() + timeoutMs;
    while (!this.closed) {
      if (await this.ping()) {
        this.health.recovered("the host answered a readiness check");
        return true;
      }
      if (systemClock.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, Math.min(50, this.probeIntervalMs)));
    }
    return false;
  }

  /** Stops listening and probing; calls in flight fail. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.health.close();
    this.stopListening();
    for (const [id, b] of this.inFlight) this.settle(id, b, undefined);
  }

  rateTable(name: string, spec: LimitSpec): RateTable<false> {
    const def = ["def-r", 0, validName(name), spec.kind, spec.params, spec.queue ?? null];
    return new MessageRateTable(this, this.table(def), name, spec);
  }

  leaseTable(name: string, o: LeaseTableOptions): LeaseTable<false> {
    return new MessageLeaseTable(this, this.table(["def-l", 0, validName(name), o.limit, o.ttlMs]), name);
  }

  penaltyTable(name: string, params: PenaltyParams, o: PenaltyTableOptions = {}): PenaltyTable<false> {
    const t = this.table(["def-p", 0, validName(name), params, o.maxKeys ?? 65_536]);
    const box = new MessagePenaltyTable(this, t, name, params, new BanCache(this.maxCachedBans));
    this.boxes.set(t.id, box);
    return box;
  }

  async rateAll(ops: readonly RateOp<false>[]): Promise<Outcome[] | Failed> {
    const tables = ops.map((o) => o.table as MessageRateTable);
    // Every table must be known to the host before the composite op: defined earlier in the same message.
    const list = ops.map((o, i) => [tables[i]!.ref.id, o.key, o.cost, o.now, o.shadow ? 1 : 0]);
    const r = await this.retrying(
      tables.map((t) => t.ref),
      ["all", 0, list],
    );
    if (!Array.isArray(r)) return FAILED;
    return r.map((w) => outcome(w as WireOutcome));
  }

  /**
   * Takes up to `bytes` from the byte quota of `key` held by the host (a
   * GCRA bucket of `bytesPerSecond` and `burst` shared by every peer of the
   * host): resolves the bytes granted (0 when the bucket is empty), or -1
   * when the host did not answer. The bandwidth shaper's leased slices
   * (src/features/bandwidth/message-quota.ts) come from here.
   */
  async quota(key: string, bytes: number, bytesPerSecond: number, burst: number): Promise<number> {
    const r = await this.send(["q", 0, key, bytes, bytesPerSecond, burst, Number.NaN]);
    return typeof r === "number" ? r : -1;
  }

  /** @internal One operation on table `ref` (defining it first if the host does not know it yet). */
  call(ref: TableRef, op: unknown[]): Promise<unknown> {
    return this.retrying([ref], op);
  }

  /** Sends `op` after the definitions of `refs`; once more, defining them again, if the host did not know them. */
  private async retrying(refs: readonly TableRef[], op: unknown[]): Promise<unknown> {
    for (const ref of refs) this.define(ref);
    let r = await this.send(op);
    if (r === UNKNOWN_TABLE) {
      // A host that restarted: its tables are gone.
      this.defined.clear();
      for (const ref of refs) this.define(ref);
      r = await this.send(op);
    }
    return r === UNKNOWN_TABLE || r === null || r === undefined ? FAILED : r;
  }

  private define(ref: TableRef): void {
    if (this.defined.has(ref.id)) return;
    this.defined.add(ref.id);
    void this.send(ref.def).then((r) => {
      // Not heard: define it again with the next op.
      if (r !== 1) this.defined.delete(ref.id);
    });
  }

  private table(def: unknown[]): TableRef {
    const id = this.nextTable++;
    def[1] = id;
    return { id, def };
  }

  /** Queues one op for this tick's message; resolves its result (UNKNOWN_TABLE included), or FAILED (never rejects). */
  private send(op: unknown[]): Promise<unknown> {
    if (this.closed || !this.health.up || this.waiting >= this.maxInFlight) return Promise.resolve(FAILED);
    return new Promise((resolve) => {
      let p = this.pending;
      if (p === undefined) {
        p = { ops: [], resolvers: [] };
        this.pending = p;
        setImmediate(() => this.flush(p!));
      }
      p.ops.push(op);
      p.resolvers.push(resolve);
      this.waiting++;
      if (p.ops.length >= this.maxBatch) this.flush(p);
    });
  }

  private flush(p: Pending): void {
    if (this.pending !== p) return;
    this.pending = undefined;
    const id = this.nextBatch++;
    const timer = setTimeout(() => {
      const b = this.inFlight.get(id);
      if (b === undefined) return;
      this.settle(id, b, undefined);
      this.health.failed(`no answer from the host within ${this.timeoutMs} ms`);
    }, this.timeoutMs);
    this.inFlight.set(id, { resolvers: p.resolvers, timer, counted: p.resolvers.length });
    const req: Request = { pc: WIRE, id, ops: encode(p.ops) as unknown[][] };
    try {
      this.o.channel.postMessage(req);
    } catch (err) {
      this.settle(id, this.inFlight.get(id)!, undefined);
      this.health.failed(`the channel refused a message: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private settle(id: number, b: Batch, results: unknown[] | undefined): void {
    clearTimeout(b.timer);
    this.inFlight.delete(id);
    this.waiting -= b.counted;
    for (let i = 0; i < b.resolvers.length; i++) {
      const r = results?.[i];
      b.resolvers[i]!(r === undefined || r === null ? FAILED : r);
    }
  }

  private onMessage(m: unknown): void {
    if (!isWire(m)) return;
    const ev = (m as EventPush).ev;
    if (Array.isArray(ev)) {
      const [id, kind, key, until] = decode(ev) as EventPush["ev"];
      this.boxes.get(id)?.event(kind === "ban" ? { kind, key, until } : { kind: "forget", key });
      return;
    }
    const reply = m as Reply;
    const b = this.inFlight.get(reply.id);
    if (b === undefined || !Array.isArray(reply.r)) return;
    this.settle(reply.id, b, decode(reply.r) as unknown[]);
  }

  protected ping(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    // Sent past the health gate: the probe is what finds the host back.
    return new Promise<boolean>((resolve) => {
      const id = this.nextBatch++;
      const timer = setTimeout(() => {
        this.inFlight.delete(id);
        resolve(false);
      }, this.timeoutMs);
      this.inFlight.set(id, { resolvers: [(r) => resolve(r === 1)], timer, counted: 0 });
      try {
        this.o.channel.postMessage({ pc: WIRE, id, ops: [["ping"]] } satisfies Request);
      } catch {
        clearTimeout(timer);
        this.inFlight.delete(id);
        resolve(false);
      }
    });
  }
}

/** @internal A table as the host knows it: its id and the op that defines it. */
export interface TableRef {
  readonly id: number;
  readonly def: unknown[];
}

class MessageRateTable implements RateTable<false> {
  constructor(
    private readonly store: MessageStore,
    readonly ref: TableRef,
    readonly name: string,
    readonly spec: LimitSpec,
  ) {}

  async consume(key: string, cost: number, now: number): Promise<Outcome | Failed> {
    const r = await this.store.call(this.ref, ["c", this.ref.id, key, cost, now]);
    return Array.isArray(r) ? outcome(r as WireOutcome) : FAILED;
  }

  async peek(key: string, cost: number, now: number): Promise<Outcome | Failed> {
    const r = await this.store.call(this.ref, ["p", this.ref.id, key, cost, now]);
    return Array.isArray(r) ? outcome(r as WireOutcome) : FAILED;
  }

  async delete(key: string): Promise<void> {
    await this.store.call(this.ref, ["d", this.ref.id, key]);
  }
}

class MessageLeaseTable implements LeaseTable<false> {
  constructor(
    private readonly store: MessageStore,
    private readonly ref: TableRef,
    readonly name: string,
  ) {}

  async acquire(key: string, now: number): Promise<LeaseGrant | Failed> {
    const r = await this.store.call(this.ref, ["la", this.ref.id, key, now]);
    if (!Array.isArray(r)) return FAILED;
    const [held, id, retryAfterMs] = r as [number, number, number];
    return { held, id, retryAfterMs };
  }

  async release(key: string, id: LeaseId, now: number): Promise<boolean | Failed> {
    return bool(await this.store.call(this.ref, ["lr", this.ref.id, key, id, now]));
  }

  async renew(key: string, id: LeaseId, now: number): Promise<boolean | Failed> {
    return bool(await this.store.call(this.ref, ["ln", this.ref.id, key, id, now]));
  }

  async held(key: string, now: number): Promise<number | Failed> {
    const r = await this.store.call(this.ref, ["lh", this.ref.id, key, now]);
    return typeof r === "number" ? r : FAILED;
  }

  async delete(key: string): Promise<void> {
    await this.store.call(this.ref, ["d", this.ref.id, key]);
  }
}

/**
 * A penalty box held by the host. Bans the host reports (in replies and as
 * pushed events) land in a local cache, so `isBanned` costs no message.
 */
class MessagePenaltyTable implements PenaltyTable<false> {
  private readonly listeners = new Set<(e: BanEvent) => void>();

  constructor(
    private readonly store: MessageStore,
    private readonly ref: TableRef,
    readonly name: string,
    readonly params: PenaltyParams,
    private readonly cache: BanCache,
  ) {}

  check(key: string, now: number): Promise<PenaltyView | Failed> {
    return this.view(["pc", this.ref.id, key, now], key);
  }

  status(key: string, now: number): Promise<PenaltyView | Failed> {
    return this.view(["ps", this.ref.id, key, now], key);
  }

  async failure(key: string, now: number): Promise<PenaltyFailure | Failed> {
    const r = (await this.store.call(this.ref, ["pf", this.ref.id, key, now])) as PenaltyFailure | Failed;
    if (r === FAILED || typeof r !== "object") return FAILED;
    this.learn(key, r);
    return r;
  }

  async ban(key: string, durationMs: number | undefined, now: number): Promise<number | Failed> {
    const r = await this.store.call(this.ref, ["pb", this.ref.id, key, durationMs ?? null, now]);
    if (typeof r !== "number") return FAILED;
    this.cache.set(key, r);
    return r;
  }

  async forget(key: string, now: number): Promise<boolean | Failed> {
    this.cache.delete(key);
    return bool(await this.store.call(this.ref, ["pg", this.ref.id, key, now]));
  }

  async banned(now: number): Promise<BanRow[] | Failed> {
    const r = await this.store.call(this.ref, ["pl", this.ref.id, now]);
    if (!Array.isArray(r)) return FAILED;
    const rows = r[1] as BanRow[];
    this.cache.replace(rows.map((b) => [b.key, b.bannedUntil]));
    return rows;
  }

  isBanned(key: string): boolean {
    return this.cache.until(key, this.storeNow()) !== undefined;
  }

  onBanEvent(listener: (e: BanEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The host's time: wall time, on the same machine. */
  storeNow(): number {
    return systemClock.wallNow();
  }

  /** @internal A ban event pushed by the host. */
  event(e: BanEvent): void {
    if (e.kind === "ban") this.cache.set(e.key, e.until);
    else this.cache.delete(e.key);
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // A faulty listener must not break the others.
      }
    }
  }

  private async view(op: unknown[], key: string): Promise<PenaltyView | Failed> {
    const r = (await this.store.call(this.ref, op)) as PenaltyView | Failed;
    if (r === FAILED || typeof r !== "object") return FAILED;
    this.learn(key, r);
    return r;
  }

  private learn(key: string, v: PenaltyView): void {
    if (v.bannedUntil > v.now) this.cache.set(key, v.bannedUntil);
  }
}

function outcome(w: WireOutcome): Outcome {
  const o = new Outcome();
  if (w[0] === 1) o.allow(w[1], w[2]);
  else o.reject((w[4] ?? "rate_limited") as RejectReason, w[1], w[2], w[3]);
  return o;
}

function bool(r: unknown): boolean | Failed {
  return typeof r === "boolean" ? r : FAILED;
}

function validName(name: unknown): string {
  if (typeof name !== "string" || name.length === 0) throw new InvalidArgumentError("name", "must be a non-empty string");
  return name;
}
