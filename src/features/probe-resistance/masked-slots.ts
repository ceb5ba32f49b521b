/**
 * What a prober the guard refuses (banned, throttled) may hold on a masking
 * listener: it keeps getting the mask site, so the cost of serving it is
 * bounded by connections open at once per address key (and, per connection,
 * by the mask relay's byte and time caps), never by refusing it, which would
 * tell it apart from the mask site. The table holds only addresses with a
 * masked connection open and is capped in keys.
 */
export class MaskedSlots {
  private readonly open = new Map<string, number>();

  constructor(private readonly maxKeys = 65_536) {}

  /** A slot for `key` under `perKey`, with its release (exactly once), or undefined when full. */
  acquire(key: string, perKey: number): (() => void) | undefined {
    const n = this.open.get(key) ?? 0;
    if (n >= perKey || (n === 0 && this.open.size >= this.maxKeys)) return undefined;
    this.open.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(key) ?? 1) - 1;
      if (left <= 0) this.open.delete(key);
      else this.open.set(key, left);
    };
  }

  /** Masked connections of refused addresses open now. */
  get size(): number {
    let total = 0;
    for (const n of this.open.values()) total += n;
    return total;
  }
}
