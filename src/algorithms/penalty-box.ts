/** The penalty box's transitions (failure back-off and escalating bans) over seven numbers of state per key. */
import { integerAtLeast, nonNegative, positive } from "../core/validate.js";

/**
 * The penalty box for authentication failures, as pure transitions over
 * seven numbers of state per key:
 *
 *   streak          consecutive failures
 *   lastFailure     time of the last failure
 *   throttledUntil  end of the current back-off
 *   windowStart     start of the ban-counting window
 *   windowCount     failures inside that window
 *   bannedUntil     end of the current ban
 *   bans            bans so far (each repeat ban lasts twice the previous)
 *
 * From the `throttleAfter`-th failure on, a key backs off for
 * base · 2^(streak − throttleAfter), capped. `banFailures` failures inside
 * `banWindowMs` ban it. A key quiet for `retentionMs` (after its last
 * failure or the end of its ban, whichever is later) reads as clean.
 */
export interface PenaltyParams {
  readonly throttleAfter: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  readonly banFailures: number;
  readonly banWindowMs: number;
  readonly banDurationMs: number;
  readonly banMultiplier: number;
  readonly banMaxMs: number;
  readonly retentionMs: number;
}

export type PenaltyOptions = Partial<PenaltyParams>;

export function penaltyParams(o: PenaltyOptions = {}): PenaltyParams {
  return {
    throttleAfter: integerAtLeast("throttleAfter", o.throttleAfter ?? 4, 1),
    backoffBaseMs: nonNegative("backoffBaseMs", o.backoffBaseMs ?? 25),
    backoffMaxMs: nonNegative("backoffMaxMs", o.backoffMaxMs ?? 1000),
    banFailures: integerAtLeast("banFailures", o.banFailures ?? 10, 1),
    banWindowMs: positive("banWindowMs", o.banWindowMs ?? 60_000),
    banDurationMs: nonNegative("banDurationMs", o.banDurationMs ?? 600_000),
    banMultiplier: positive("banMultiplier", o.banMultiplier ?? 2),
    banMaxMs: nonNegative("banMaxMs", o.banMaxMs ?? 86_400_000),
    retentionMs: positive("retentionMs", o.retentionMs ?? 600_000),
  };
}

export const PENALTY_WIDTH = 7;
const STREAK = 0;
const LAST = 1;
const THROTTLED = 2;
const WSTART = 3;
const WCOUNT = 4;
const BANNED = 5;
const BANS = 6;

export function penaltyInit(s: Float64Array, o: number): void {
  s[o + STREAK] = 0;
  s[o + LAST] = -Infinity;
  s[o + THROTTLED] = -Infinity;
  s[o + WSTART] = -Infinity;
  s[o + WCOUNT] = 0;
  s[o + BANNED] = -Infinity;
  s[o + BANS] = 0;
}

/** Back-off after the `streak`-th consecutive failure (0 before `throttleAfter`). Never overflows. */
export function backoffMs(streak: number, p: PenaltyParams): number {
  if (streak < p.throttleAfter) return 0;
  const e = streak - p.throttleAfter;
  // 2^e only matters until it passes max/base; past ~2^60 the product is Infinity-safe but meaningless.
  if (e > 60) return p.backoffMaxMs;
  return Math.min(p.backoffBaseMs * 2 ** e, p.backoffMaxMs);
}

/** Length of the (bans + 1)-th ban. */
export function banLengthMs(bans: number, p: PenaltyParams): number {
  if (bans > 60) return p.banMaxMs;
  return Math.min(p.banDurationMs * p.banMultiplier ** bans, p.banMaxMs);
}

/** When the key reads as clean again if nothing more happens. */
export function penaltyQuietAt(s: Float64Array, o: number, p: PenaltyParams): number {
  return Math.max(s[o + LAST]!, s[o + BANNED]!) + p.retentionMs;
}

/** True when a ban ends after the last failure, so the ban (not the failure) sets when the key goes quiet. */
export function penaltyBanOutlasts(s: Float64Array, o: number): boolean {
  return s[o + BANNED]! > s[o + LAST]!;
}

export function penaltyIsStale(s: Float64Array, o: number, now: number, p: PenaltyParams): boolean {
  return now >= penaltyQuietAt(s, o, p);
}

export interface PenaltyStatus {
  streak: number;
  throttledUntil: number;
  bannedUntil: number;
  bans: number;
}

export function penaltyStatus(s: Float64Array, o: number, now: number, p: PenaltyParams): PenaltyStatus {
  if (penaltyIsStale(s, o, now, p)) return { streak: 0, throttledUntil: -Infinity, bannedUntil: -Infinity, bans: 0 };
  return { streak: s[o + STREAK]!, throttledUntil: s[o + THROTTLED]!, bannedUntil: s[o + BANNED]!, bans: s[o + BANS]! };
}

/** Records a failure. Returns true when this failure started a ban. */
export function penaltyFailure(s: Float64Array, o: number, now: number, p: PenaltyParams): boolean {
  if (penaltyIsStale(s, o, now, p)) penaltyInit(s, o);
  const streak = s[o + STREAK]! + 1;
  s[o + STREAK] = streak;
  s[o + LAST] = now;
  if (streak >= p.throttleAfter) s[o + THROTTLED] = now + backoffMs(streak, p);
  if (!(now - s[o + WSTART]! < p.banWindowMs)) {
    s[o + WSTART] = now;
    s[o + WCOUNT] = 0;
  }
  s[o + WCOUNT] = s[o + WCOUNT]! + 1;
  if (s[o + WCOUNT]! >= p.banFailures && !(s[o + BANNED]! > now)) {
    s[o + BANNED] = now + banLengthMs(s[o + BANS]!, p);
    s[o + BANS] = s[o + BANS]! + 1;
    s[o + WSTART] = -Infinity;
    s[o + WCOUNT] = 0;
    return true;
  }
  return false;
}

/** Places a ban directly (admin or shared ban), escalating like a earned one unless `durationMs` is given. */
export function penaltyBan(s: Float64Array, o: number, now: number, p: PenaltyParams, durationMs?: number): number {
  if (penaltyIsStale(s, o, now, p)) penaltyInit(s, o);
  const until = now + (durationMs ?? banLengthMs(s[o + BANS]!, p));
  s[o + BANNED] = Math.max(s[o + BANNED]!, until);
  s[o + BANS] = s[o + BANS]! + 1;
  return s[o + BANNED]!;
}
