import { msUntil } from "../algorithms/outcome.js";
import {
  PENALTY_WIDTH,
  type PenaltyOptions,
  type PenaltyParams,
  type PenaltyStatus,
  penaltyBan,
  penaltyBanOutlasts,
  penaltyFailure,
  penaltyInit,
  penaltyIsStale,
  penaltyParams,
  penaltyQuietAt,
  penaltyStatus,
} from "../algorithms/penalty-box.js";
import { type Clock, systemClock } from "../core/clock.js";
import { InvalidArgumentError } from "../core/errors.js";
import { integerAtLeast, nonNegative } from "../core/validate.js";
import { Decision } from "./decision.js";

export interface PenaltyBoxOptions extends PenaltyOptions {
  /** Most keys tracked (default 65,536). */
  maxKeys?: number;
  clock?: Clock;
  shadow?: boolean;
}

export interface FailureResult extends PenaltyStatus {
  /** This failure started a ban. */
  banned: boolean;
  /** The table was full of live entries when this key needed a place. */
  saturated: boolean;
}

/** Streaks at or above this share the last bucket; eviction only needs "lowest streak first" roughly at the top. */
const BUCKETS = 64;
/** Entries examined per search for a stale one, so a table full of banned keys still costs O(1) per newcomer. */
const STALE_SCAN = 16;

class Entry {
  readonly state = new Float64Array(PENALTY_WIDTH);
  // activity order (oldest first) and per-streak-bucket order (oldest first)
  aPrev: Entry | undefined;
  aNext: Entry | undefined;
  bPrev: Entry | undefined;
  bNext: Entry | undefined;
  bucket = 0;
  constructor(readonly key: string) {}
}

class List {
  head: Entry | undefined;
  tail: Entry | undefined;
}

/**
 * Tracks authentication failures per key (IP, IPv6 prefix, subject).
 * Bounded: when full, a newcomer still gets a place. Stale entries go first,
 * then the one with the lowest streak (ties: the oldest), so the attackers
 * with the longest streaks are never the ones forgotten; banned keys rank
 * with the longest streaks. While the table is
 * full of live entries it reports saturation, so callers can throttle
 * globally instead of trusting a table that is being flushed.
 */
export class PenaltyBox {
  readonly params: PenaltyParams;
  readonly maxKeys: number;
  readonly shadow: boolean;
  private readonly clock: Clock;
  private readonly entries = new Map<string, Entry>();
  private readonly activity = new List();
  private readonly buckets: List[] = Array.from({ length: BUCKETS }, () => new List());
  private lastNow = -Infinity;
  private saturatedEvictions = 0;

  constructor(o: PenaltyBoxOptions = {}) {
    this.params = penaltyParams(o);
    this.maxKeys = integerAtLeast("maxKeys", o.maxKeys ?? 65_536, 1);
    this.clock = o.clock ?? systemClock;
    this.shadow = o.shadow ?? false;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Whether `key` has a record (a newcomer would need a place in the table). */
  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Live entries evicted because the table was full. */
  get evictions(): number {
    return this.saturatedEvictions;
  }

  /** True while the table is full and even its oldest entry is still live. */
  get saturated(): boolean {
    return this.entries.size >= this.maxKeys && this.staleEntry(this.now(), false) === undefined;
  }

  /** Whether `key` may try now: banned, throttled (backing off) or allowed. */
  check(key: string): Decision {
    validKey(key);
    // Read the clock first: every operation observes it, so the clamp against
    // clock regressions does not depend on which keys happen to be tracked.
    const now = this.now();
    const e = this.entries.get(key);
    if (e === undefined) return new Decision(true, 0, 0, 0, 0, undefined, false, false);
    const st = penaltyStatus(e.state, 0, now, this.params);
    let reason: "banned" | "throttled" | undefined;
    let until = 0;
    if (st.bannedUntil > now) {
      reason = "banned";
      until = st.bannedUntil;
    } else if (st.throttledUntil > now) {
      reason = "throttled";
      until = st.throttledUntil;
    }
    if (reason === undefined) return new Decision(true, 0, 0, 0, 0, undefined, false, false);
    const wait = msUntil(now, until);
    if (this.shadow) return new Decision(true, 0, 0, wait, 0, reason, true, true);
    return new Decision(false, 0, 0, wait, wait, reason, true, false);
  }

  status(key: string): PenaltyStatus {
    validKey(key);
    const now = this.now();
    const e = this.entries.get(key);
    if (e === undefined) return { streak: 0, throttledUntil: -Infinity, bannedUntil: -Infinity, bans: 0 };
    return penaltyStatus(e.state, 0, now, this.params);
  }

  recordFailure(key: string): FailureResult {
    validKey(key);
    const now = this.now();
    const { entry, saturated } = this.entryFor(key, now);
    const banned = penaltyFailure(entry.state, 0, now, this.params);
    this.touch(entry);
    return { ...penaltyStatus(entry.state, 0, now, this.params), banned, saturated };
  }

  /** A success clears the key. */
  recordSuccess(key: string): void {
    this.forget(key);
  }

  /** Bans `key` now (for `durationMs`, or the escalating length). Returns the ban's end on this box's clock. */
  ban(key: string, durationMs?: number): number {
    validKey(key);
    // NaN or a negative length would poison the key's state (a NaN ban is never "over" and never "on").
    if (durationMs !== undefined) nonNegative("durationMs", durationMs);
    const now = this.now();
    const { entry } = this.entryFor(key, now);
    const until = penaltyBan(entry.state, 0, now, this.params, durationMs);
    this.touch(entry);
    return until;
  }

  /** Lifts a ban and clears the key's record. */
  forget(key: string): boolean {
    const e = this.entries.get(key);
    if (e === undefined) return false;
    this.remove(e);
    return true;
  }

  /** Removes up to `max` stale records from the oldest end (O(max)), so an owner can give memory back after a flood; returns how many. */
  sweep(max: number): number {
    const now = this.now();
    let n = 0;
    while (n < max) {
      const e = this.staleEntry(now, true);
      if (e === undefined) break;
      this.remove(e);
      n++;
    }
    return n;
  }

  /** Keys banned now with their ban end (O(n); for admin listings). */
  *banned(): IterableIterator<{ key: string; bannedUntil: number; bans: number }> {
    const now = this.now();
    for (const e of this.entries.values()) {
      const st = penaltyStatus(e.state, 0, now, this.params);
      if (st.bannedUntil > now) yield { key: e.key, bannedUntil: st.bannedUntil, bans: st.bans };
    }
  }

  /** The clock reading the box uses (monotonic, clamped). */
  now(): number {
    const t = this.clock.now();
    if (t > this.lastNow) this.lastNow = t;
    return this.lastNow;
  }

  private entryFor(key: string, now: number): { entry: Entry; saturated: boolean } {
    const found = this.entries.get(key);
    if (found !== undefined) return { entry: found, saturated: false };
    let saturated = false;
    if (this.entries.size >= this.maxKeys) {
      const stale = this.staleEntry(now, true);
      if (stale !== undefined) {
        this.remove(stale);
      } else {
        saturated = true;
        this.saturatedEvictions++;
        this.remove(this.lowestStreak());
      }
    }
    const entry = new Entry(key);
    penaltyInit(entry.state, 0);
    this.entries.set(key, entry);
    append(this.activity, entry, "a");
    append(this.buckets[0]!, entry, "b");
    return { entry, saturated };
  }

  /**
   * A stale entry, if one is near the oldest end of the activity order.
   * Entries whose quiet time is set by their last failure sit in the order of
   * that failure, so the first live one of them proves none after it is
   * stale. An entry kept live by a ban ending later does not prove that: it
   * is skipped (and, when `rotate`, moved to the newest end so it stops
   * hiding stale entries behind it).
   */
  private staleEntry(now: number, rotate: boolean): Entry | undefined {
    let e = this.activity.head;
    for (let i = 0; i < STALE_SCAN && e !== undefined; i++) {
      if (penaltyIsStale(e.state, 0, now, this.params)) return e;
      if (!penaltyBanOutlasts(e.state, 0)) return undefined;
      const next = e.aNext;
      if (rotate) {
        unlink(this.activity, e, "a");
        append(this.activity, e, "a");
      }
      e = next;
    }
    return undefined;
  }

  /** Oldest entry of the lowest non-empty streak bucket. */
  private lowestStreak(): Entry {
    for (const b of this.buckets) if (b.head !== undefined) return b.head;
    throw new Error("penalty box: full table with no entries");
  }

  /** Moves an entry to the newest end of the activity order and into the bucket of its streak. */
  private touch(e: Entry): void {
    unlink(this.activity, e, "a");
    append(this.activity, e, "a");
    unlink(this.buckets[e.bucket]!, e, "b");
    // A key whose ban outlasts its last failure ranks with the highest
    // streaks, whatever its own (an admin ban may have none): otherwise a
    // flood of new keys could flush bans out of a full table.
    e.bucket = penaltyBanOutlasts(e.state, 0) ? BUCKETS - 1 : Math.min(e.state[0]!, BUCKETS - 1);
    append(this.buckets[e.bucket]!, e, "b");
  }

  private remove(e: Entry): void {
    this.entries.delete(e.key);
    unlink(this.activity, e, "a");
    unlink(this.buckets[e.bucket]!, e, "b");
  }

  /** When `key` reads as clean (for stores that persist the box). */
  quietAt(key: string): number {
    const e = this.entries.get(key);
    return e === undefined ? -Infinity : penaltyQuietAt(e.state, 0, this.params);
  }
}

function append(l: List, e: Entry, which: "a" | "b"): void {
  if (which === "a") {
    e.aPrev = l.tail;
    e.aNext = undefined;
    if (l.tail) l.tail.aNext = e;
    else l.head = e;
  } else {
    e.bPrev = l.tail;
    e.bNext = undefined;
    if (l.tail) l.tail.bNext = e;
    else l.head = e;
  }
  l.tail = e;
}

function unlink(l: List, e: Entry, which: "a" | "b"): void {
  const prev = which === "a" ? e.aPrev : e.bPrev;
  const next = which === "a" ? e.aNext : e.bNext;
  if (prev) {
    if (which === "a") prev.aNext = next;
    else prev.bNext = next;
  } else l.head = next;
  if (next) {
    if (which === "a") next.aPrev = prev;
    else next.bPrev = prev;
  } else l.tail = prev;
  if (which === "a") e.aPrev = e.aNext = undefined;
  else e.bPrev = e.bNext = undefined;
}

/** An unknown key type must not read as "clean" (that would fail open). */
function validKey(key: unknown): void {
  if (typeof key !== "string") throw new InvalidArgumentError("key", "must be a string");
}
