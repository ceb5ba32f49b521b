/** The parameter string the rate script reads for a limit. */
import type { LimitSpec } from "../../algorithms/limit-spec.js";

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
