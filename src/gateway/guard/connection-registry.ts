/**
 * Open connections by client key (the address, or its IPv6 prefix), so a
 * ban can close what the banned address already has open. Every entry is a
 * live connection admitted by the guard, so the registry is bounded by the
 * global connection cap.
 */
export interface Closable {
  close(reason: string): void;
}

export class ConnectionRegistry {
  private readonly byKey = new Map<string, Set<Closable>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(key: string, c: Closable): void {
    let set = this.byKey.get(key);
    if (set === undefined) {
      set = new Set();
      this.byKey.set(key, set);
    }
    if (!set.has(c)) {
      set.add(c);
      this.count++;
    }
  }

  delete(key: string, c: Closable): void {
    const set = this.byKey.get(key);
    if (set === undefined || !set.delete(c)) return;
    this.count--;
    if (set.size === 0) this.byKey.delete(key);
  }

  /** Closes every connection of `key`; returns how many. */
  closeAll(key: string, reason: string): number {
    const set = this.byKey.get(key);
    if (set === undefined) return 0;
    const victims = [...set];
    for (const c of victims) c.close(reason);
    return victims.length;
  }

  /** Closes every connection (on stop). */
  closeEverything(reason: string): void {
    for (const key of [...this.byKey.keys()]) this.closeAll(key, reason);
  }
}
