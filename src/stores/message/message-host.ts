/** The host of the message store: answers its peers' operations from a MemoryStore. */
import { type LimitSpec, limitSpec, specFrom } from "../../algorithms/limit-spec.js";
import { Outcome } from "../../algorithms/outcome.js";
import type { PenaltyParams } from "../../algorithms/penalty-box.js";
import { type Clock, systemClock } from "../../core/clock.js";
import { MemoryLeaseTable } from "../memory-lease-table.js";
import { MemoryPenaltyTable } from "../memory-penalty-table.js";
import { MemoryRateTable } from "../memory-rate-table.js";
import { MemoryStore } from "../memory-store.js";
import type { RateOp } from "../store.js";
import type { MessageChannel } from "./channel.js";
import { type EventPush, type Reply, type Request, UNKNOWN_TABLE, WIRE, type WireOutcome, decode, encode, isWire } from "./wire.js";

type Table = MemoryRateTable | MemoryLeaseTable | MemoryPenaltyTable;

/** Most tables one connection may define, so a faulty peer cannot grow the host without bound. */
const MAX_TABLES = 10_000;
/** Distinct quota rates (a per-identity default plus overrides) one host keeps tables for. */
const MAX_QUOTA_RATES = 256;

export interface MessageStoreHostOptions {
  /** Where the state lives; share one store between the hosts of several workers so they share their limits. */
  store?: MemoryStore;
  /**
   * The clock of operations sent without one (the store's time, like Redis
   * TIME). Default: wall time, so every worker on the machine reads the
   * same ban ends.
   */
  clock?: Clock;
}

/**
 * The side of the message store that holds the state: it answers the
 * operations a MessageStore sends over `channel` from a MemoryStore. Attach
 * one per worker (all sharing one MemoryStore) in the primary process:
 *
 *   const store = new MemoryStore();
 *   cluster.on("fork", (w) => new MessageStoreHost(processChannel(w), { store }));
 *
 * Ban events of the boxes a connection uses are pushed to it, so each
 * worker's local ban cache stays current.
 */
export class MessageStoreHost {
  readonly store: MemoryStore;
  private readonly clock: Clock;
  private readonly tables = new Map<number, Table>();
  /**
   * Leases this peer holds now, by table id then lease id (the key): what
   * releaseLeases() gives back when the peer dies without releasing them.
   */
  private readonly leases = new Map<number, Map<string, { key: string; id: number; n: number }>>();
  /** The lease tables defined (kept past close(), so releaseLeases() still finds them). */
  private readonly defined = new Map<number, MemoryLeaseTable>();
  private readonly unsubscribe: (() => void)[] = [];
  /** The byte quotas' buckets by rate (their state is in the shared store, so every host draws from the same one). */
  private readonly quotas = new Map<string, MemoryRateTable>();
  private readonly quotaOut = new Outcome();
  private readonly stopListening: () => void;
  private closed = false;

  constructor(
    private readonly channel: MessageChannel,
    o: MessageStoreHostOptions = {},
  ) {
    this.store = o.store ?? new MemoryStore();
    this.clock = o.clock ?? { now: () => systemClock.wallNow(), wallNow: () => systemClock.wallNow(), setTimer: (f, ms) => systemClock.setTimer(f, ms) };
    this.stopListening = channel.onMessage((m) => this.onMessage(m));
  }

  /** Stops answering (the store and its state stay; see releaseLeases for the peer's leases). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopListening();
    for (const u of this.unsubscribe) u();
    this.tables.clear();
  }

  /** Leases the peer holds now (acquired through this host and not released). */
  get leasesHeld(): number {
    let n = 0;
    for (const m of this.leases.values()) for (const l of m.values()) n += l.n;
    return n;
  }

  /**
   * Releases every lease the peer still holds: call it when the peer is gone
   * (a crashed worker), so its connections stop counting at once instead of
   * when their leases' TTL ends. Returns how many were released.
   */
  releaseLeases(): number {
    let n = 0;
    const now = this.clock.now();
    for (const [id, held] of this.leases) {
      const t = this.tables.get(id) ?? this.defined.get(id);
      // A lease table without a TTL gives every lease of a key the same id: each is released once.
      if (t instanceof MemoryLeaseTable) for (const l of held.values()) for (let i = 0; i < l.n; i++) if (t.release(l.key, l.id, now)) n++;
    }
    this.leases.clear();
    return n;
  }

  private onMessage(m: unknown): void {
    if (this.closed || !isWire(m)) return;
    const req = m as Request;
    if (typeof req.id !== "number" || !Array.isArray(req.ops)) return;
    const r: unknown[] = [];
    for (const op of req.ops) {
      try {
        r.push(Array.isArray(op) ? this.apply(decode(op) as unknown[]) : UNKNOWN_TABLE);
      } catch {
        // A malformed op answers "failed" for itself; the batch goes on.
        r.push(null);
      }
    }
    const reply: Reply = { pc: WIRE, id: req.id, r: encode(r) as unknown[] };
    this.channel.postMessage(reply);
  }

  private now(v: unknown): number {
    return typeof v === "number" && !Number.isNaN(v) ? v : this.clock.now();
  }

  private table<T extends Table>(id: unknown, kind: new (...a: never[]) => T): T | undefined {
    const t = this.tables.get(id as number);
    return t instanceof kind ? t : undefined;
  }

  private define(id: number, t: Table): number {
    if (!this.tables.has(id) && this.tables.size >= MAX_TABLES) throw new Error("too many tables");
    this.tables.set(id, t);
    if (t instanceof MemoryLeaseTable) this.defined.set(id, t);
    return 1;
  }

  /** Counts a lease of the peer up (acquired) or down (released). */
  private noteLease(table: number, key: string, id: number, delta: 1 | -1): void {
    let m = this.leases.get(table);
    if (m === undefined) this.leases.set(table, (m = new Map()));
    const k = `${id}\u0000${key}`;
    const l = m.get(k);
    if (l === undefined) {
      if (delta > 0) m.set(k, { key, id, n: 1 });
    } else if ((l.n += delta) <= 0) m.delete(k);
  }

  private apply(op: unknown[]): unknown {
    const [code, id] = op;
    switch (code) {
      case "ping":
        return 1;
      case "def-r": {
        const [, , name, kind, params, queue] = op as [string, number, string, LimitSpec["kind"], unknown, LimitSpec["queue"]];
        return this.define(id as number, this.store.rateTable(name, specFrom(kind, params, queue ?? undefined)));
      }
      case "def-l": {
        const [, , name, limit, ttlMs] = op as [string, number, string, number, number];
        return this.define(id as number, this.store.leaseTable(name, { limit, ttlMs }));
      }
      case "def-p": {
        const [, , name, params, maxKeys] = op as [string, number, string, PenaltyParams, number];
        const t = this.store.penaltyTable(name, params, { maxKeys });
        if (this.tables.get(id as number) !== t) {
          this.unsubscribe.push(t.onBanEvent((e) => this.push(id as number, e.kind, e.key, e.kind === "ban" ? e.until : 0)));
        }
        return this.define(id as number, t);
      }
      case "all":
        return this.rateAll(op[2] as unknown[][]);
      case "q":
        return this.quota(op[2], op[3], op[4], op[5], op[6]);
    }
    const rate = this.table(id, MemoryRateTable);
    const lease = this.table(id, MemoryLeaseTable);
    const box = this.table(id, MemoryPenaltyTable);
    const key = op[2] as string;
    if (typeof key !== "string" && code !== "pl") return null;
    switch (code) {
      case "c":
        return rate === undefined ? UNKNOWN_TABLE : wire(rate.consume(key, op[3] as number, this.now(op[4]), new Outcome()));
      case "p":
        return rate === undefined ? UNKNOWN_TABLE : wire(rate.peek(key, op[3] as number, this.now(op[4]), new Outcome()));
      case "d": {
        const t = this.tables.get(id as number);
        if (t === undefined) return UNKNOWN_TABLE;
        if (t instanceof MemoryPenaltyTable) t.forget(key);
        else t.delete(key);
        return 1;
      }
      case "la": {
        if (lease === undefined) return UNKNOWN_TABLE;
        const g = lease.acquire(key, this.now(op[3]));
        if (g.held >= 0) this.noteLease(id as number, key, g.id as number, 1);
        return [g.held, g.id, g.retryAfterMs];
      }
      case "lr": {
        if (lease === undefined) return UNKNOWN_TABLE;
        const released = lease.release(key, op[3] as number, this.now(op[4]));
        if (released) this.noteLease(id as number, key, op[3] as number, -1);
        return released;
      }
      case "ln":
        return lease === undefined ? UNKNOWN_TABLE : lease.renew(key, op[3] as number, this.now(op[4]));
      case "lh":
        return lease === undefined ? UNKNOWN_TABLE : lease.held(key, this.now(op[3]));
      case "pc":
      case "ps":
        return box === undefined ? UNKNOWN_TABLE : box.status(key, this.now(op[3]));
      case "pf":
        return box === undefined ? UNKNOWN_TABLE : box.failure(key, this.now(op[3]));
      case "pb":
        return box === undefined ? UNKNOWN_TABLE : box.ban(key, (op[3] as number | null) ?? undefined, this.now(op[4]));
      case "pg":
        return box === undefined ? UNKNOWN_TABLE : box.forget(key);
      case "pl": {
        if (box === undefined) return UNKNOWN_TABLE;
        const now = this.now(op[2]);
        return [now, box.banned(now)];
      }
    }
    return null;
  }

  /**
   * A leased byte quota: grants min(bytes, what `key`'s bucket holds) from a
   * GCRA bucket of `rate` bytes/s and `burst` (the one bucket every worker
   * draws that key's bytes from), or 0 when it is empty.
   */
  private quota(key: unknown, bytes: unknown, rate: unknown, burst: unknown, now: unknown): number | null {
    if (typeof key !== "string" || typeof bytes !== "number" || !(bytes >= 0) || typeof rate !== "number" || typeof burst !== "number") return null;
    const name = `bw:${rate}:${burst}`;
    let t = this.quotas.get(name);
    if (t === undefined) {
      if (this.quotas.size >= MAX_QUOTA_RATES) this.quotas.delete(this.quotas.keys().next().value!);
      t = this.store.rateTable(name, limitSpec({ algorithm: "gcra", rate, burst }));
      this.quotas.set(name, t);
    }
    const at = this.now(now);
    const want = Math.floor(bytes);
    const o = t.peek(key, want, at, this.quotaOut);
    // Partial grants: what fits now, rather than nothing until the whole slice fits.
    const grant = o.allowed ? want : Math.min(want, o.remaining);
    if (grant <= 0) return 0;
    return t.consume(key, grant, at, this.quotaOut).allowed ? grant : 0;
  }

  private rateAll(list: unknown[][]): unknown {
    const ops: RateOp<true>[] = [];
    for (const [id, key, cost, now, shadow] of list) {
      const table = this.table(id, MemoryRateTable);
      if (table === undefined) return UNKNOWN_TABLE;
      ops.push({ table, key: key as string, cost: cost as number, now: this.now(now), shadow: shadow === 1 });
    }
    return this.store.rateAll(ops).map(wire);
  }

  private push(id: number, kind: "ban" | "forget", key: string, until: number): void {
    if (this.closed) return;
    const ev: EventPush = { pc: WIRE, ev: encode([id, kind, key, until]) as EventPush["ev"] };
    this.channel.postMessage(ev);
  }
}

function wire(o: Outcome): WireOutcome {
  return [o.allowed ? 1 : 0, o.remaining, o.resetMs, o.retryAfterMs, o.reason ?? null];
}
