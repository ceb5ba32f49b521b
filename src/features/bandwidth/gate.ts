/**
 * What a shaped stream asks before it moves bytes. One connection holds one
 * gate per direction; the gate answers with a grant of 1 ..= `max` bytes,
 * either at once (the return value) or later through `grant`.
 */
export interface Gate {
  /**
   * Asks for up to `max` (> 0) bytes. Returns the bytes granted now (> 0),
   * or 0 when the request waits: `grant` is then called exactly once with
   * the bytes granted, unless `cancel` or `close` comes first. At most one
   * request per gate is outstanding.
   */
  acquire(max: number, grant: (bytes: number) => void): number;
  /** Withdraws the outstanding request, if any. */
  cancel(): void;
  /** Releases the gate: withdraws any request and detaches it from its buckets. */
  close(): void;
}

/** A gate that never waits: for a direction nothing shapes. */
export const openGate: Gate = {
  acquire: (max) => max,
  cancel: () => {},
  close: () => {},
};

/**
 * Several gates in series (for example the identity's bucket, then the IP's):
 * bytes move only once every stage has granted them. A stage may grant less
 * than the stage before it passed on; the rest is carried as credit already
 * paid at the earlier stages and offered first on the next request, so no
 * stage is charged twice and nothing granted is lost while the chain lives.
 */
export class ChainGate implements Gate {
  /** carry[k]: bytes granted by stages 0 .. k-1 that stage k has not granted yet (carry[0] unused). */
  private readonly carry: number[];
  private waitingStage = -1;
  private asked = 0;
  private max = 0;
  private grant: ((bytes: number) => void) | undefined;
  private closed = false;
  private readonly onStageGrant = (bytes: number): void => {
    const k = this.waitingStage;
    this.waitingStage = -1;
    const out = this.apply(k, bytes);
    const done = out > 0 ? out : this.advance();
    if (done > 0) {
      const g = this.grant!;
      this.grant = undefined;
      g(done);
    }
  };

  constructor(private readonly stages: readonly Gate[]) {
    this.carry = new Array<number>(stages.length).fill(0);
  }

  acquire(max: number, grant: (bytes: number) => void): number {
    if (this.closed) return 0;
    this.max = max;
    this.grant = grant;
    const now = this.advance();
    if (now > 0) this.grant = undefined;
    return now;
  }

  cancel(): void {
    if (this.waitingStage >= 0) this.stages[this.waitingStage]!.cancel();
    this.waitingStage = -1;
    this.grant = undefined;
  }

  close(): void {
    this.cancel();
    this.closed = true;
    for (const s of this.stages) s.close();
  }

  /** Moves bytes through the stages until the last one grants (returns the bytes) or one waits (returns 0). */
  private advance(): number {
    for (;;) {
      let k = this.stages.length - 1;
      while (k > 0 && this.carry[k] === 0) k--;
      const amount = k === 0 ? this.max : Math.min(this.carry[k]!, this.max);
      this.asked = amount;
      this.waitingStage = k;
      const g = this.stages[k]!.acquire(amount, this.onStageGrant);
      if (g === 0) return 0;
      this.waitingStage = -1;
      const out = this.apply(k, g);
      if (out > 0) return out;
    }
  }

  /** Records a grant of stage k; returns the bytes that passed the last stage (0 if more stages remain). */
  private apply(k: number, bytes: number): number {
    const g = Math.min(bytes, this.asked);
    if (k > 0) this.carry[k] = this.carry[k]! - g;
    if (k === this.stages.length - 1) return g;
    this.carry[k + 1] = this.carry[k + 1]! + g;
    return 0;
  }
}
