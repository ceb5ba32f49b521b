/**
 * Who misbehaved recently: counts offences (refused connections, rejected
 * authentications, throttle events) per address key in one-minute slots over
 * the last hour. Addresses never become metric labels; this table is what
 * the dashboard's "top offenders" and the label-free "worst client in the
 * last hour" gauge read.
 *
 * Bounded in size and time: at most `maxKeys` keys (the least recently seen
 * is dropped first, so a churn of one-shot addresses cannot push out a client
 * that keeps offending) and nothing older than the horizon is ever counted.
 */
import type { Clock } from "../core/clock.js";
import { integerAtLeast } from "../core/validate.js";

const SLOT_MS = 60_000;

export interface OffenderTrackerOptions {
  clock: Clock;
  /** Most keys remembered (default 4096). */
  maxKeys?: number;
  /** How many one-minute slots are kept (default 60: one hour). */
  slots?: number;
}

export interface Offender {
  key: string;
  count: number;
  /** Offence kinds seen in the window, most frequent first. */
  kinds: string[];
  /** Wall-clock ms of the last offence. */
  lastSeen: number;
}

/** Kinds are a small fixed vocabulary; an entry keeps at most this many. */
const MAX_KINDS = 8;

class Entry {
  readonly counts: Uint32Array;
  /** Which minute each slot currently holds, so a stale slot reads as zero without a sweep. */
  readonly minutes: Float64Array;
  readonly kinds = new Map<string, number>();
  lastMinute = -Infinity;
  lastWall = 0;
  // recency order, oldest first
  prev: Entry | undefined;
  next: Entry | undefined;
  constructor(
    public key: string,
    slots: number,
  ) {
    this.counts = new Uint32Array(slots);
    this.minutes = new Float64Array(slots).fill(-Infinity);
  }

  /** Makes an evicted entry new again for another key, so a full table allocates nothing. */
  reuse(key: string): void {
    this.key = key;
    this.minutes.fill(-Infinity);
    this.kinds.clear();
    this.lastMinute = -Infinity;
  }
}

export class OffenderTracker {
  private readonly clock: Clock;
  private readonly maxKeys: number;
  private readonly slots: number;
  private readonly entries = new Map<string, Entry>();
  private oldest: Entry | undefined;
  private newest: Entry | undefined;

  constructor(o: OffenderTrackerOptions) {
    this.clock = o.clock;
    this.maxKeys = integerAtLeast("maxKeys", o.maxKeys ?? 4096, 1);
    this.slots = integerAtLeast("slots", o.slots ?? 60, 1);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Counts one offence of `kind` by `key` now. */
  record(key: string, kind: string, count = 1): void {
    const minute = Math.floor(this.clock.now() / SLOT_MS);
    let e = this.entries.get(key);
    if (e === undefined) {
      if (this.entries.size >= this.maxKeys) {
        // The least recently seen key goes: one that keeps offending is always near the newest end.
        e = this.oldest!;
        this.entries.delete(e.key);
        e.reuse(key);
      } else {
        e = new Entry(key, this.slots);
      }
      this.entries.set(key, e);
    } else {
      this.unlink(e);
    }
    this.append(e);
    const slot = minute % this.slots;
    if (e.minutes[slot] !== minute) {
      e.minutes[slot] = minute;
      e.counts[slot] = 0;
    }
    e.counts[slot] = Math.min(0xffff_ffff, e.counts[slot]! + count);
    if (e.lastMinute < minute - this.slots) e.kinds.clear();
    e.lastMinute = minute;
    e.lastWall = this.clock.wallNow();
    if (e.kinds.has(kind) || e.kinds.size < MAX_KINDS) e.kinds.set(kind, (e.kinds.get(kind) ?? 0) + count);
  }

  /** The `limit` keys with the most offences in the last `windowMs` (rounded up to whole minutes), most first. */
  top(limit: number, windowMs: number): Offender[] {
    const minute = Math.floor(this.clock.now() / SLOT_MS);
    const span = Math.min(this.slots, Math.max(1, Math.ceil(windowMs / SLOT_MS)));
    const out: Offender[] = [];
    for (const [key, e] of this.entries) {
      const count = this.sum(e, minute, span);
      if (count > 0) {
        const kinds = [...e.kinds.entries()].sort((a, b) => b[1] - a[1]).map(([k]) => k);
        out.push({ key, count, kinds, lastSeen: e.lastWall });
      }
    }
    out.sort((a, b) => b.count - a.count || b.lastSeen - a.lastSeen);
    return out.slice(0, Math.max(0, limit));
  }

  /** The highest offence count of any one key over the last `windowMs` (0 when nobody offended). */
  max(windowMs: number): number {
    const minute = Math.floor(this.clock.now() / SLOT_MS);
    const span = Math.min(this.slots, Math.max(1, Math.ceil(windowMs / SLOT_MS)));
    let best = 0;
    for (const e of this.entries.values()) best = Math.max(best, this.sum(e, minute, span));
    return best;
  }

  private unlink(e: Entry): void {
    if (e.prev) e.prev.next = e.next;
    else this.oldest = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.newest = e.prev;
    e.prev = e.next = undefined;
  }

  private append(e: Entry): void {
    e.prev = this.newest;
    e.next = undefined;
    if (this.newest) this.newest.next = e;
    else this.oldest = e;
    this.newest = e;
  }

  private sum(e: Entry, minute: number, span: number): number {
    if (e.lastMinute <= minute - span) return 0;
    let total = 0;
    for (let i = 0; i < this.slots; i++) {
      const m = e.minutes[i]!;
      if (m > minute - span && m <= minute) total += e.counts[i]!;
    }
    return total;
  }
}
