/**
 * Gives the failed-login tables' memory back after a flood. The penalty box
 * removes stale records lazily (a newcomer takes a stale record's place),
 * which keeps it O(1) without a timer per key, but a table a flood filled
 * would then stay full for as long as no new failures come. This sweeper
 * removes stale records in batches on one timer, armed only while a table
 * has records, so an idle gateway with empty tables has no timer at all.
 */
import type { Clock, TimerHandle } from "../../core/clock.js";
import type { PenaltyBox } from "../../limiter/penalty-box.js";
import { reclaimHeap } from "./heap-reclaim.js";

/** How often a non-empty table is swept, and the most records removed per table per sweep. */
export const SWEEP_INTERVAL_MS = 10_000;
export const SWEEP_BATCH = 16_384;

export class TableSweeper {
  private timer: TimerHandle | undefined;
  private closed = false;
  /** Records removed since the tables were last empty. */
  private drained = 0;

  /**
   * `onDrained` runs when a sweep empties every table: whatever filled them
   * (a flood) is over, and its memory can be given back (heap-reclaim.ts).
   * That happens at most once per quiet period as long as the records'
   * retention (ban plus ban.window after the last failure), so its cost (two
   * short collections) stays negligible.
   */
  constructor(
    private readonly clock: Clock,
    private readonly tables: () => readonly PenaltyBox<boolean>[],
    private readonly onDrained: () => void = reclaimHeap,
  ) {}

  /** Arms the next sweep unless one is pending (call when a record is added). */
  arm(): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = this.clock.setTimer(() => this.sweep(), SWEEP_INTERVAL_MS);
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private sweep(): void {
    this.timer = undefined;
    let left = 0;
    for (const t of this.tables()) {
      this.drained += t.sweep(SWEEP_BATCH);
      left += t.size;
    }
    if (left > 0) return this.arm();
    if (this.drained > 0) this.onDrained();
    this.drained = 0;
  }
}
