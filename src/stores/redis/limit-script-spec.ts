import type { LimitSpec, RateLimitOptions } from "../../limiter/limit-spec.js";

/**
 * The parameter string the rate script reads for a limit ("g <interval>
 * <tolerance> <burst> <ttlFloor>", ...). Numbers are sent with JavaScript's
 * shortest round-trip form, which Lua parses back to the same double.
 * `ttlFloorMs` is the shortest lifetime of a key: with Redis TIME a key
 * lives until its state reads as fresh; with an injected clock its
 * milliseconds are not real ones, so a generous floor keeps state alive
 * while a test holds the clock still.
 */
export function scriptSpec(spec: LimitSpec, ttlFloorMs: number): string {
  switch (spec.kind) {
    case "gcra": {
      const p = spec.params;
      return `g ${p.intervalMs} ${p.toleranceMs} ${p.burst} ${ttlFloorMs}`;
    }
    case "fixed_window":
      return `f ${spec.params.permitLimit} ${spec.params.windowMs} ${ttlFloorMs}`;
    case "sliding_window":
      return `s ${spec.params.limit} ${spec.params.windowMs} ${ttlFloorMs}`;
  }
}

/**
 * The insurance limit: the same algorithm with its capacity divided by the
 * number of gateways expected to share Redis, so that while Redis is down
 * the instances together stay near the real limit. Never below one permit.
 */
export function insuranceOptions(spec: LimitSpec, instances: number): RateLimitOptions {
  switch (spec.kind) {
    case "gcra": {
      const p = spec.params;
      return { algorithm: "gcra", rate: p.rate / instances, periodMs: p.periodMs, burst: Math.max(1, p.burst / instances) };
    }
    case "fixed_window":
      return { algorithm: "fixed_window", permitLimit: Math.max(1, Math.floor(spec.params.permitLimit / instances)), windowMs: spec.params.windowMs };
    case "sliding_window":
      return { algorithm: "sliding_window", limit: Math.max(1, Math.floor(spec.params.limit / instances)), windowMs: spec.params.windowMs };
  }
}
