/**
 * Hands log lines on to a buffered destination (pino's sonic-boom) in
 * batches of at least `minChars` characters, instead of one by one.
 * sonic-boom appends every write to the text it has pending and measures
 * that text's byte length each time; with lines ~130 bytes long written one
 * at a time, that measuring copied kilobytes per line while a write was in
 * flight (the pending text is a chain of appended strings, made flat to be
 * measured). Batched, it sees a few writes per 4 KiB. Lines keep their order
 * and wait no longer than they would in the destination's own buffer: until
 * enough have gathered or the next flush.
 */
export interface BufferedDestination {
  write(text: string): boolean;
  flush(): void;
  flushSync(): void;
}

export class LineBatch implements BufferedDestination {
  private pending = "";

  constructor(
    private readonly target: BufferedDestination,
    private readonly minChars = 4096,
  ) {}

  write(text: string): boolean {
    this.pending += text;
    if (this.pending.length >= this.minChars) this.pass();
    return true;
  }

  /** Passes what is gathered on and lets the destination write it (asynchronously). */
  flush(): void {
    this.pass();
    this.target.flush();
  }

  /** Passes what is gathered on and writes everything out before returning (on stop). */
  flushSync(): void {
    this.pass();
    this.target.flushSync();
  }

  private pass(): void {
    if (this.pending.length === 0) return;
    const text = this.pending;
    this.pending = "";
    this.target.write(text);
  }
}
