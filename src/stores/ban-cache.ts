/**
 * The local copy of a shared ban list: subject → ban end (in store time).
 * Filled at start from Redis and kept current by pub/sub, so checking a ban
 * costs no I/O. Bounded: beyond `maxEntries` the oldest entry is dropped
 * (Redis still holds it; the next status read or reload brings it back).
 */
export class BanCache {
  private readonly bans = new Map<string, number>();

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.bans.size;
  }

  set(key: string, until: number): void {
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

  /** The ban end of `key` if it is banned at `now` (an ended ban is dropped). */
  until(key: string, now: number): number | undefined {
    const u = this.bans.get(key);
    if (u === undefined) return undefined;
    if (u > now) return u;
    this.bans.delete(key);
    return undefined;
  }

  /** Replaces the whole list (after a (re)load from Redis). */
  replace(entries: Iterable<[string, number]>): void {
    this.bans.clear();
    for (const [k, u] of entries) this.set(k, u);
  }

  *entries(now: number): IterableIterator<[string, number]> {
    for (const [k, u] of this.bans) if (u > now) yield [k, u];
  }
}
