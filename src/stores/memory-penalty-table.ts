/** The penalty box's state in the memory store, with eviction of stale keys. */
import {
  PENALTY_WIDTH,
  type PenaltyParams,
  penaltyBan,
  penaltyBanOutlasts,
  penaltyFailure,
  penaltyInit,
  penaltyIsStale,
  penaltyQuietAt,
  penaltyStatus,
} from "../algorithms/penalty-box.js";
import type { BanEvent, BanRow, PenaltyFailure, PenaltyTable, PenaltyView } from "./store.js";

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
 * The penalty box's state in the memory store (src/algorithms/penalty-box.ts
 * per key). Bounded: when full, a newcomer still gets a place. Stale
 * entries go first, then the one with the lowest streak (ties: the oldest),
 * so the attackers with the longest streaks are never the ones forgotten;
 * banned keys rank with the longest streaks. While the table is full of
 * live entries it reports saturation, so callers can throttle globally
 * instead of trusting a table that is being flushed.
 */
export class MemoryPenaltyTable implements PenaltyTable<true> {
  private readonly entries = new Map<string, Entry>();
  private readonly activity = new List();
  private readonly buckets: List[] = Array.from({ length: BUCKETS }, () => new List());
  private readonly listeners = new Set<(e: BanEvent) => void>();
  private saturatedEvictions = 0;

  constructor(
    readonly name: string,
    readonly params: PenaltyParams,
    readonly maxKeys: number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Live entries evicted because the table was full. */
  get evictions(): number {
    return this.saturatedEvictions;
  }

  tracks(key: string): boolean {
    return this.entries.has(key);
  }

  /** O(max): a table only reclaims stale records when a newcomer needs the place, which may never come after a flood. */
  sweep(max: number, now: number): number {
    let n = 0;
    while (n < max) {
      const e = this.staleEntry(now, true);
      if (e === undefined) break;
      this.remove(e);
      n++;
    }
    return n;
  }

  /** True while the table is full and even its oldest entry is still live. */
  saturatedAt(now: number): boolean {
    return this.entries.size >= this.maxKeys && this.staleEntry(now, false) === undefined;
  }

  check(key: string, now: number): PenaltyView {
    return this.status(key, now);
  }

  status(key: string, now: number): PenaltyView {
    const e = this.entries.get(key);
    if (e === undefined) return { streak: 0, throttledUntil: -Infinity, bannedUntil: -Infinity, bans: 0, now };
    return { ...penaltyStatus(e.state, 0, now, this.params), now };
  }

  failure(key: string, now: number): PenaltyFailure {
    const { entry, saturated } = this.entryFor(key, now);
    const banned = penaltyFailure(entry.state, 0, now, this.params);
    this.touch(entry);
    const st = penaltyStatus(entry.state, 0, now, this.params);
    if (banned) this.emit({ kind: "ban", key, until: st.bannedUntil });
    return { ...st, now, banned, saturated };
  }

  ban(key: string, durationMs: number | undefined, now: number): number {
    const { entry } = this.entryFor(key, now);
    const until = penaltyBan(entry.state, 0, now, this.params, durationMs);
    this.touch(entry);
    this.emit({ kind: "ban", key, until });
    return until;
  }

  forget(key: string): boolean {
    const e = this.entries.get(key);
    if (e === undefined) return false;
    this.remove(e);
    this.emit({ kind: "forget", key });
    return true;
  }

  banned(now: number): BanRow[] {
    const rows: BanRow[] = [];
    for (const e of this.entries.values()) {
      const st = penaltyStatus(e.state, 0, now, this.params);
      if (st.bannedUntil > now) rows.push({ key: e.key, bannedUntil: st.bannedUntil, bans: st.bans });
    }
    return rows;
  }

  isBanned(key: string, now: number): boolean {
    const e = this.entries.get(key);
    return e !== undefined && penaltyStatus(e.state, 0, now, this.params).bannedUntil > now;
  }

  onBanEvent(listener: (e: BanEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** When `key` reads as clean (for stores that persist the box). */
  quietAt(key: string): number {
    const e = this.entries.get(key);
    return e === undefined ? -Infinity : penaltyQuietAt(e.state, 0, this.params);
  }

  private emit(e: BanEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // A faulty listener must not break the others or the decision path.
      }
    }
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
    throw new Error("penalty table: full table with no entries");
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
