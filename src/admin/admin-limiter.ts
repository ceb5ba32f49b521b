/**
 * The admin API's own rate limit, on the engine's GCRA limiter and a small
 * bounded store of its own (never the gateway's). The strategy decides what
 * shares a budget: `path` gives every exact path its own (/v1/bans/1.2.3.4
 * and /v1/bans/1.2.3.5 apart), `endpoint` every route (method + template),
 * `global` one for the whole API.
 */
import type { Clock } from "../core/clock.js";
import type { Decision } from "../limiter/decision.js";
import { createLimiter } from "../limiter/create-limiter.js";
import type { RateLimiter } from "../limiter/rate-limiter.js";
import { MemoryStore } from "../stores/memory-store.js";
import type { AdminConfig, AdminRateStrategy } from "./config.js";

/** Distinct paths remembered under the `path` strategy; the least recent go first. */
const MAX_KEYS = 10_000;
/** Paths longer than this share one budget: they are not routes anyway. */
const MAX_PATH_KEY = 256;

export class AdminLimiter {
  readonly strategy: AdminRateStrategy;
  private readonly limiter: RateLimiter;

  constructor(cfg: AdminConfig["rate_limit"], clock: Clock) {
    this.strategy = cfg.strategy;
    this.limiter = createLimiter({
      name: "admin",
      algorithm: "gcra",
      rate: cfg.limit,
      periodMs: cfg.window,
      burst: cfg.burst,
      store: new MemoryStore({ maxKeys: MAX_KEYS }),
      clock,
    });
  }

  /** Counts one request. `route` is the matched route's id ("GET /v1/bans/{ip}"), or undefined for no route. */
  check(path: string, route: string | undefined): Decision {
    return this.limiter.check(this.keyOf(path, route));
  }

  private keyOf(path: string, route: string | undefined): string {
    switch (this.strategy) {
      case "global":
        return "*";
      case "endpoint":
        return route ?? "unmatched";
      case "path":
        return route === undefined || path.length > MAX_PATH_KEY ? "unmatched" : path;
    }
  }
}
