/**
 * The guard's defensive mode: what it does when its failed-login table
 * (the penalty box) is full of live entries.
 *
 * A full table that must make room drops a live record, and with it a ban
 * or a failure streak: under IP churn the attacker's fresh addresses would
 * flush the bans of the old ones (fail-open). So once the table has had to
 * drop a live entry, or a newcomer would make it, the guard enters this mode
 * for `durationMs` (extended while it keeps happening), and while it lasts:
 *
 * - failures of addresses the table does not track are counted against
 *   their network prefix (IPv4 /24, IPv6 /48 by default) in a second, small
 *   table, so they take no place from the records already held;
 * - a prefix with a ban or a back-off refuses its addresses at accept and
 *   before any password is checked (prefix records are honoured as long as
 *   they live, also after the mode ended).
 *
 * The mode ends by itself on the injected clock. Its starts and ends are
 * reported to `onChange`; the report says whether it should be logged, at
 * most one start (and its end) per `LOG_INTERVAL_MS`, so a flapping mode
 * cannot flood the log.
 */
import type { Clock, TimerHandle } from "../../core/clock.js";
import type { Decision } from "../../limiter/decision.js";
import { PenaltyBox, type FailureResult, type PenaltyBoxOptions } from "../../limiter/penalty-box.js";
import { ipKey } from "../../net/ip-key.js";

/** Least time between two logged starts of the mode. */
export const LOG_INTERVAL_MS = 60_000;

export interface DefensiveModeSettings {
  durationMs: number;
  ipv4Prefix: number;
  ipv6Prefix: number;
  /** Size of the prefix table. */
  maxPrefixes: number;
  /** Parameters of the prefix table's records (the guard's ban settings); its size is `maxPrefixes`. */
  penalty: Omit<PenaltyBoxOptions, "maxKeys" | "clock">;
}

/** Why the mode started (or was extended). */
export type SaturationCause = "table_full" | "live_eviction";

export interface DefensiveTransition {
  active: boolean;
  /** start: what started it; end: "expired". */
  reason: SaturationCause | "expired";
  /** Whether this transition should be logged (see LOG_INTERVAL_MS). */
  log: boolean;
  /** Starts not logged since the last logged one. */
  suppressed: number;
}

export interface DefensiveModeStats {
  active: boolean;
  /** Times the mode started. */
  starts: number;
  /** Live entries the address table dropped, over its lifetime (and across reloads). */
  liveEvictions: number;
  /** Prefixes tracked now. */
  prefixes: number;
}

export class DefensiveMode {
  private box: PenaltyBox;
  private s: DefensiveModeSettings;
  private on = false;
  private until = -Infinity;
  private timer: TimerHandle | undefined;
  private starts = 0;
  private evicted = 0;
  private lastLoggedStart = -Infinity;
  private startLogged = false;
  private suppressed = 0;

  constructor(
    settings: DefensiveModeSettings,
    private readonly clock: Clock,
    private readonly onChange: (t: DefensiveTransition) => void = () => {},
  ) {
    this.s = settings;
    this.box = this.makeBox(settings);
  }

  get active(): boolean {
    return this.on;
  }

  /** The prefix table (for listings and unbans). */
  get prefixes(): PenaltyBox {
    return this.box;
  }

  stats(): DefensiveModeStats {
    return { active: this.on, starts: this.starts, liveEvictions: this.evicted, prefixes: this.box.size };
  }

  /** New settings. The prefix table is kept when its parameters are unchanged, otherwise rebuilt with its live bans. */
  configure(settings: DefensiveModeSettings): void {
    const old = this.box;
    const fresh = this.makeBox(settings);
    this.s = settings;
    if (JSON.stringify([old.params, old.maxKeys, old.shadow]) === JSON.stringify([fresh.params, fresh.maxKeys, fresh.shadow])) return;
    const now = old.now();
    for (const b of old.banned()) fresh.ban(b.key, b.bannedUntil - now);
    this.box = fresh;
  }

  /**
   * The prefix a guard key belongs to. A key is an address or, for IPv6, an
   * address prefix in CIDR form; a key already coarser than the defensive
   * prefix is its own prefix.
   */
  prefixOf(key: string): string {
    const slash = key.indexOf("/");
    const address = slash < 0 ? key : key.slice(0, slash);
    const keyLength = slash < 0 ? 128 : Number(key.slice(slash + 1));
    return ipKey(address, { ipv4Prefix: this.s.ipv4Prefix, ipv6Prefix: Math.min(this.s.ipv6Prefix, keyLength) });
  }

  /** The prefix's refusal (banned or backing off) for `key`, or undefined when its prefix has none. O(1); nothing when no prefix is tracked. */
  check(key: string): Decision | undefined {
    if (this.box.size === 0) return undefined;
    const d = this.box.check(this.prefixOf(key));
    return d.allowed && !d.shadowed ? undefined : d;
  }

  /** Counts a failure of `key` against its prefix. */
  recordFailure(key: string): FailureResult & { key: string } {
    const prefix = this.prefixOf(key);
    return { ...this.box.recordFailure(prefix), key: prefix };
  }

  /** Lifts a prefix's ban and record. */
  forget(prefix: string): boolean {
    return this.box.forget(prefix);
  }

  /** The address table dropped `n` live entries. */
  noteEvictions(n: number): void {
    if (n <= 0) return;
    this.evicted += n;
    this.trigger("live_eviction");
  }

  /** Starts the mode, or extends it to `durationMs` from now. */
  trigger(reason: SaturationCause): void {
    const now = this.clock.now();
    this.until = now + this.s.durationMs;
    if (this.on) return;
    this.on = true;
    this.starts++;
    this.startLogged = now - this.lastLoggedStart >= LOG_INTERVAL_MS;
    if (this.startLogged) this.lastLoggedStart = now;
    this.onChange({ active: true, reason, log: this.startLogged, suppressed: this.startLogged ? this.suppressed : 0 });
    if (this.startLogged) this.suppressed = 0;
    else this.suppressed++;
    this.schedule(this.s.durationMs);
  }

  /** Stops the end timer (the gateway is stopping). */
  close(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    // One timer at a time: extensions move `until` and the timer re-arms when it fires early.
    this.timer = this.clock.setTimer(() => this.expire(), ms);
  }

  private expire(): void {
    this.timer = undefined;
    const left = this.until - this.clock.now();
    if (left > 0) {
      this.schedule(left);
      return;
    }
    this.on = false;
    this.onChange({ active: false, reason: "expired", log: this.startLogged, suppressed: 0 });
  }

  private makeBox(s: DefensiveModeSettings): PenaltyBox {
    return new PenaltyBox({ ...s.penalty, clock: this.clock, maxKeys: s.maxPrefixes });
  }
}
