/**
 * The local copy of a shared ban list: subject → ban end (in store time).
 * Filled at start from Redis and kept current by pub/sub, so checking a ban
 * costs no I/O. Bounded: beyond `maxEntries` the oldest entry is dropped
 * (Redis still holds it; the next status read or reload brings it back).
 *
 * Lifts leave a mark. The events arrive on one connection and the reads on
 * another, so a read of the store can answer "banned" from before a lift
 * whose event has already been handled here; cached, that answer would
 * refuse the key until its ban's end (hours) although it was lifted. A read
 * therefore takes a `mark()` before it starts and caches through `learn`,
 * which drops the ban when the key was lifted since. A reload of the whole
 * list skips every key lifted lately: the list's index is cleaned by
 * commands of its own, apart from the lift, and may still name the key.
 * Nothing is lost by a skip: the next check of the key reads the store,
 * which is the truth.
 */
/**
 * Lifts remembered (about 100 bytes each: 1 MB at most per table). The
 * races they close last one round trip to the store; this many covers
 * thousands of lifts a second.
 */
const MAX_LIFTED = 10_000;

export class BanCache {
  private readonly bans = new Map<string, number>();
  /** Keys lifted lately → the number of their lift (oldest first; bounded). */
  private readonly lifted = new Map<string, number>();
  private lifts = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxLifted = MAX_LIFTED,
  ) {}

  get size(): number {
    return this.bans.size;
  }

  /** Caches a ban known to be newer than any lift seen (a ban event, or this instance's own ban). */
  set(key: string, until: number): void {
    this.lifted.delete(key);
    this.bans.delete(key);
    this.bans.set(key, until);
    if (this.bans.size > this.maxEntries) {
      const oldest = this.bans.keys().next();
      if (!oldest.done) this.bans.delete(oldest.value);
    }
  }

  delete(key: string): void {
    this.bans.delete(key);
  }

  /** Where the lifts stand now: taken before a read whose answer goes to `learn`. */
  mark(): number {
    return this.lifts;
  }

  /** A ban lifted (a forget, here or at any instance): dropped, and marked so no older read brings it back. */
  lift(key: string): void {
    this.bans.delete(key);
    this.lifted.delete(key);
    this.lifted.set(key, ++this.lifts);
    if (this.lifted.size > this.maxLifted) {
      const oldest = this.lifted.keys().next();
      if (!oldest.done) this.lifted.delete(oldest.value);
    }
  }

  /** Caches a ban read by a call begun at `mark`, unless the key was lifted since (the read may predate the lift). */
  learn(key: string, until: number, mark: number): boolean {
    if ((this.lifted.get(key) ?? -1) > mark) return false;
    this.set(key, until);
    return true;
  }

  /** The ban end of `key` if it is banned at `now` (an ended ban is dropped). */
  until(key: string, now: number): number | undefined {
    const u = this.bans.get(key);
    if (u === undefined) return undefined;
    if (u > now) return u;
    this.bans.delete(key);
    return undefined;
  }

  /** Replaces the whole list (after a (re)load from the store), without the keys lifted lately. */
  replace(entries: Iterable<[string, number]>): void {
    this.bans.clear();
    for (const [k, u] of entries) if (!this.lifted.has(k)) this.set(k, u);
  }

  /** Whether `key` was lifted lately (a reload leaves it out). */
  liftedLately(key: string): boolean {
    return this.lifted.has(key);
  }

  *entries(now: number): IterableIterator<[string, number]> {
    for (const [k, u] of this.bans) if (u > now) yield [k, u];
  }
}
