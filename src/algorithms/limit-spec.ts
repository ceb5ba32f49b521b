/** A limit's specification: the rate options a caller gives, validated into one algorithm and its parameters. */
import { fixedWindow, fixedWindowParams, type FixedWindowParams } from "./fixed-window.js";
import { gcra, gcraParams, type GcraParams } from "./gcra.js";
import type { RateAlgorithm } from "./rate-algorithm.js";
import { slidingWindow, slidingWindowParams, type SlidingWindowParams } from "./sliding-window.js";
import { InvalidArgumentError } from "../core/errors.js";
import { integerAtLeast } from "../core/validate.js";

export type QueueOrder = "oldest_first" | "newest_first";

/** Options that name a rate algorithm and its parameters. */
export type RateLimitOptions =
  | { algorithm: "gcra" | "token_bucket"; rate: number; periodMs?: number; burst?: number }
  | {
      algorithm: "fixed_window";
      permitLimit: number;
      windowMs: number;
      /** Permits that may wait for the next window (default 0: reject at once). */
      queueLimit?: number;
      /** Which waiter is admitted first; newest_first drops the oldest when the queue is full. */
      queueOrder?: QueueOrder;
    }
  | { algorithm: "sliding_window"; limit: number; windowMs: number };

export type AlgorithmName = RateLimitOptions["algorithm"];

/** A validated algorithm with its parameters. */
export type LimitSpec =
  | { kind: "gcra"; algorithm: RateAlgorithm<GcraParams>; params: GcraParams; queue: undefined }
  | {
      kind: "fixed_window";
      algorithm: RateAlgorithm<FixedWindowParams>;
      params: FixedWindowParams;
      queue: { limit: number; order: QueueOrder } | undefined;
    }
  | { kind: "sliding_window"; algorithm: RateAlgorithm<SlidingWindowParams>; params: SlidingWindowParams; queue: undefined };

/** Validates options into a spec; every bad value throws an InvalidArgumentError naming it. */
export function limitSpec(o: RateLimitOptions): LimitSpec {
  switch (o.algorithm) {
    case "gcra":
    case "token_bucket":
      return { kind: "gcra", algorithm: gcra, params: gcraParams(o), queue: undefined };
    case "fixed_window": {
      const params = fixedWindowParams(o);
      const limit = integerAtLeast("queueLimit", o.queueLimit ?? 0, 0);
      const order = o.queueOrder ?? "oldest_first";
      if (order !== "oldest_first" && order !== "newest_first") {
        throw new InvalidArgumentError("queueOrder", `must be "oldest_first" or "newest_first", got ${String(order)}`);
      }
      return { kind: "fixed_window", algorithm: fixedWindow, params, queue: limit > 0 ? { limit, order } : undefined };
    }
    case "sliding_window":
      return { kind: "sliding_window", algorithm: slidingWindow, params: slidingWindowParams(o), queue: undefined };
    default:
      throw new InvalidArgumentError(
        "algorithm",
        `must be one of gcra, token_bucket, fixed_window, sliding_window; got ${String((o as { algorithm: unknown }).algorithm)}`,
      );
  }
}

/**
 * A spec rebuilt from its kind and already validated parameters (a spec that
 * crossed a message channel, where the algorithm's functions cannot go).
 */
export function specFrom(kind: LimitSpec["kind"], params: unknown, queue: LimitSpec["queue"]): LimitSpec {
  switch (kind) {
    case "gcra":
      return { kind, algorithm: gcra, params: params as GcraParams, queue: undefined };
    case "fixed_window":
      return { kind, algorithm: fixedWindow, params: params as FixedWindowParams, queue };
    case "sliding_window":
      return { kind, algorithm: slidingWindow, params: params as SlidingWindowParams, queue: undefined };
    default:
      throw new InvalidArgumentError("kind", `unknown algorithm ${String(kind)}`);
  }
}
