/** What answers while a store that can fail is unavailable (insurance, open, closed), for every limiter. */
import type { LimitSpec, RateLimitOptions } from "../algorithms/limit-spec.js";
import type { StoreFailure } from "../stores/store.js";
import { type OutcomeView, allowed, rejected } from "./decision.js";

/**
 * What answers while a store that can fail (Redis, the message store) is
 * unavailable, written once for every limiter and every such store:
 *
 *   insurance  a local limit (the store's `insurance` memory store) with the
 *              capacity divided by the instances expected to share the
 *              store, so that together they stay near the real limit; the
 *              store probes its backend and decisions return to it on its
 *              own as soon as it answers again
 *   open       allow
 *   closed     reject with `store_unavailable`, Retry-After = the probe interval
 *
 * Stores report failure (FAILED) and expose their mode; they never decide.
 * A store that cannot fail has no `failure` and never reaches this code.
 */
export function fallback(f: StoreFailure | undefined, capacity: number, insurance: () => OutcomeView): OutcomeView {
  if (f === undefined) throw new Error("a store without a failure mode did not answer");
  f.countFallback();
  switch (f.failureMode) {
    case "insurance":
      return insurance();
    case "open":
      return allowed(capacity);
    case "closed":
      return rejected("store_unavailable", f.probeIntervalMs);
  }
}

/** An insurance capacity: the real one divided by the instances, never below one. */
export function insuranceShare(capacity: number, instances: number): number {
  return Math.max(1, Math.floor(capacity / instances));
}

/**
 * The insurance limit of a rate limit: the same algorithm with its capacity
 * divided by the number of instances expected to share the store. Never
 * below one permit.
 */
export function insuranceRateOptions(spec: LimitSpec, instances: number): RateLimitOptions {
  switch (spec.kind) {
    case "gcra": {
      const p = spec.params;
      return { algorithm: "gcra", rate: p.rate / instances, periodMs: p.periodMs, burst: Math.max(1, p.burst / instances) };
    }
    case "fixed_window":
      return { algorithm: "fixed_window", permitLimit: insuranceShare(spec.params.permitLimit, instances), windowMs: spec.params.windowMs };
    case "sliding_window":
      return { algorithm: "sliding_window", limit: insuranceShare(spec.params.limit, instances), windowMs: spec.params.windowMs };
  }
}
