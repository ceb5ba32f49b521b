/** A new connection's caps (concurrency leases) and rates checked together on any store, all or nothing. */
import type { AdmitAnswer, Failed, RateOp, Store } from "../stores/store.js";
import { FAILED } from "../stores/store.js";
import { admitAll, releaseAll } from "../stores/admit-all.js";
import type { ConcurrencyLimiter, ConcurrencyResult, Lease } from "./concurrency-limiter.js";
import type { Decision } from "./decision.js";
import type { RateLimiter } from "./rate-limiter.js";

/** One cap of an admission: the limiter and the key it counts. */
export interface CapCheck {
  readonly limiter: ConcurrencyLimiter<false>;
  readonly key: string;
}

/** One rate of an admission (a limit without a wait queue). */
export interface RateCheck {
  readonly limiter: RateLimiter<false>;
  readonly key: string;
}

/** Each check's answer in order; undefined for the checks after a refusal (not decided, nothing taken). */
export interface AdmissionResult {
  readonly caps: (ConcurrencyResult<false> | undefined)[];
  readonly rates: (Decision | undefined)[];
}

/**
 * A new connection's caps (concurrency leases) and rates on an
 * asynchronous store as one store operation (`admitAll`: one script call
 * on Redis), all or nothing: after a refusal by a limit not in shadow
 * mode, no lease is held and no rate charged. When the store does not
 * answer, each limit's failure mode decides, as for a check of its own.
 */
export async function admitTogether(store: Store<false>, caps: readonly CapCheck[], rates: readonly RateCheck[]): Promise<AdmissionResult> {
  const ops = {
    leases: caps.map((c) => c.limiter.acquireOp(c.key)),
    rates: rates.map((r): RateOp<false> => ({ table: r.limiter.table, key: r.key, cost: 1, now: r.limiter.now(), shadow: r.limiter.shadow })),
  };
  const a: AdmitAnswer | Failed = await admitAll(store, ops);
  if (a === FAILED) {
    return { caps: caps.map((c) => c.limiter.resultOf(c.key, FAILED)), rates: rates.map((r) => r.limiter.decide(FAILED, r.key, 1)) };
  }
  // After a refusal the store kept none of the leases it answered as taken: the results hold no lease to release.
  const refused = a.leases.some((g, i) => g.held < 0 && !ops.leases[i]!.shadow) || a.rates.some((o, i) => !o.allowed && !ops.rates[i]!.shadow);
  return {
    caps: caps.map((c, i) => {
      if (i >= a.leases.length) return undefined;
      const r = c.limiter.resultOf(c.key, a.leases[i]!);
      return refused ? { decision: r.decision, lease: undefined } : r;
    }),
    rates: rates.map((r, i) => (i < a.rates.length ? r.limiter.decide(a.rates[i]!, r.key, 1) : undefined)),
  };
}

/**
 * Ends leases of one store together (`releaseAll`: one script call on
 * Redis); the failure mode's leases end on their own. If the store does
 * not answer, the lease TTL frees the slots.
 */
export function releaseTogether(store: Store<false>, leases: readonly Lease<false>[]): void {
  const ops = [];
  for (const l of leases) {
    if (l.releaseOp === undefined) void l.release();
    else {
      const op = l.releaseOp();
      if (op !== undefined) ops.push(op);
    }
  }
  if (ops.length > 0) void releaseAll(store, ops);
}
