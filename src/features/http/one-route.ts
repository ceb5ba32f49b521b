/**
 * What the one-line middlewares (`rateLimit` for Express and node:http,
 * `rateLimitPlugin` for Fastify) share: they take the option names of
 * express-rate-limit and @fastify/rate-limit, and build from them a route
 * table of one route ("/*") with one limit for the HttpLimiter. Everything
 * the route table does (queue, lockout, shadow mode, stores, trusted
 * proxies, logs) therefore works the same here.
 *
 * The core is asked for the current draft's headers and the RateLimit-*
 * triple; each one-liner rewrites them into the header set its options ask
 * for (draft-6, draft-7, draft-8, X-RateLimit-*), so the core stays the one
 * place that computes them.
 */
import type { Clock } from "../../core/clock.js";
import { InvalidArgumentError } from "../../core/errors.js";
import type { Store } from "../../stores/store.js";
import { HttpLimiter, type Verdict } from "./http-limiter.js";
import type { HttpHooks, HttpLimiterOptions, HttpLogger, KeyFunction, LimitConfig, LockoutConfig, RouteLockoutConfig } from "./types.js";

/**
 * A callback type that accepts callbacks written for a narrower request type
 * (Express's Request, Fastify's FastifyRequest), as method parameters do.
 */
export type Callback<A extends unknown[], R> = { bivarianceHack(...args: A): R }["bivarianceHack"];

/** The RateLimit header drafts a one-liner can send (the names express-rate-limit uses). */
export type StandardHeaders = "draft-6" | "draft-7" | "draft-8";

export type Algorithm = "fixed_window" | "sliding_window" | "gcra" | "token_bucket";

/** Subject lockout on the one route: the lockout's numbers and whose failures count. */
export type OneRouteLockout = LockoutConfig & RouteLockoutConfig;

/** What a one-liner adds to its peer's options; the same names in both. */
export interface PortcullisExtras {
  /**
   * How the limit counts (default "fixed_window", as the peers do).
   * "gcra" and "token_bucket" allow `limit` per window at a steady pace with
   * a burst of `burst`; "sliding_window" weighs the previous window.
   */
  algorithm?: Algorithm;
  /** Burst of a gcra / token_bucket limit (default: the limit). */
  burst?: number;
  /**
   * FIFO queue: up to this many requests over the limit wait (in order) for
   * the next window instead of being refused (fixed window only; default 0).
   */
  queue?: number;
  /** Count and log, never refuse (also for the lockout). */
  shadow?: boolean;
  /** Lock a subject (user, client id) out after repeated failed responses. */
  lockout?: OneRouteLockout | boolean;
  /** Where counts live: memory by default, `RedisStore` from portcullis/redis to share them between instances. */
  store?: Store;
  /**
   * Names this limiter's counts in its store (default: the policy name).
   * Two one-liners on one shared store need different scopes.
   */
  scope?: string;
  /** Proxies whose X-Forwarded-For / Forwarded are believed (default none: the socket's address is the client). */
  trustedProxies?: string[];
  /** IPv4 prefix length clients are counted by (default 32). */
  ipv4Prefix?: number;
  clock?: Clock;
  logger?: HttpLogger;
  hooks?: HttpHooks;
  /** Most keys kept when no store is given (default 100,000). */
  maxKeys?: number;
}

/** The limit's shape once the peer's option names are resolved. */
export interface OneRouteSpec extends PortcullisExtras {
  /** Policy name (RateLimit headers, logs, metrics). */
  name: string;
  limit: number;
  windowMs: number;
  /** IPv6 prefix length clients are counted by. */
  ipv6Prefix?: number;
  /** Reads the key a request was given by the application's key function. */
  key?: KeyFunction;
}

const LOCKOUT_ROUTE_FIELDS = ["subject", "failureStatuses", "successResets"] as const;

/** The route table of one route that a one-liner runs on. */
export function oneRouteTable(s: OneRouteSpec): HttpLimiterOptions {
  positiveInt("limit", s.limit);
  positiveInt("windowMs", s.windowMs);
  if (s.store !== undefined && !isOurStore(s.store)) {
    throw new InvalidArgumentError("store", "must be a Portcullis store (MemoryStore, or RedisStore from portcullis/redis); stores written for another library have a different interface");
  }
  const algorithm = s.algorithm ?? "fixed_window";
  if (s.queue !== undefined && algorithm !== "fixed_window") throw new InvalidArgumentError("queue", "needs the fixed_window algorithm");
  const common = { name: s.name, shadow: s.shadow ?? false, ...(s.key !== undefined ? { key: s.key } : {}) };
  let limit: LimitConfig;
  switch (algorithm) {
    case "fixed_window":
      limit = { ...common, algorithm, permitLimit: s.limit, windowMs: s.windowMs, queueLimit: s.queue ?? 0 };
      break;
    case "sliding_window":
      limit = { ...common, algorithm, limit: s.limit, windowMs: s.windowMs };
      break;
    case "gcra":
    case "token_bucket":
      limit = { ...common, algorithm, rate: s.limit, periodMs: s.windowMs, burst: s.burst ?? s.limit };
      break;
    default:
      throw new InvalidArgumentError("algorithm", `must be one of fixed_window, sliding_window, gcra, token_bucket; got ${JSON.stringify(algorithm)}`);
  }
  let routeLockout: RouteLockoutConfig | undefined;
  let lockout: LockoutConfig | undefined;
  if (s.lockout !== undefined && s.lockout !== false) {
    const l: OneRouteLockout = s.lockout === true ? {} : s.lockout;
    routeLockout = {};
    lockout = {};
    for (const [k, v] of Object.entries(l)) {
      if ((LOCKOUT_ROUTE_FIELDS as readonly string[]).includes(k)) (routeLockout as Record<string, unknown>)[k] = v;
      else (lockout as Record<string, unknown>)[k] = v;
    }
    if (s.shadow === true && lockout.shadow === undefined) lockout.shadow = true;
  }
  return {
    routes: [{ name: s.name, match: "/*", limit, ...(routeLockout !== undefined ? { lockout: routeLockout } : {}) }],
    ...(lockout !== undefined ? { lockout } : {}),
    // The core writes the current draft and the RateLimit-* triple; the one-liner picks from them.
    headers: { format: ["ietf", "legacy"], onAllowed: true },
    scope: s.scope ?? s.name,
    ...pick(s, ["store", "trustedProxies", "ipv4Prefix", "ipv6Prefix", "clock", "logger", "hooks", "maxKeys"]),
  };
}

/**
 * The limiters of a limit given as a function of the request: one route
 * table per distinct number it returns (a plan's tier, say), each counting
 * in a scope of its own. Bounded, because each tier keeps its own counts.
 */
export class LimiterTiers {
  static readonly MAX_TIERS = 64;
  private readonly tiers = new Map<number, HttpLimiter>();
  constructor(private readonly build: (limit: number) => HttpLimiterOptions) {}

  get(limit: number): HttpLimiter {
    let l = this.tiers.get(limit);
    if (l === undefined) {
      positiveInt("limit", limit);
      if (this.tiers.size >= LimiterTiers.MAX_TIERS) throw new InvalidArgumentError("limit", `the limit function returned more than ${LimiterTiers.MAX_TIERS} distinct values`);
      l = new HttpLimiter(this.build(limit));
      this.tiers.set(limit, l);
    }
    return l;
  }

  dispose(): void {
    for (const l of this.tiers.values()) l.dispose();
  }
}

/** A limit's state as the one-liners report it (express-rate-limit's `req.rateLimit`). */
export interface RateLimitInfo {
  limit: number;
  used: number;
  remaining: number;
  resetTime: Date | undefined;
  /** The key the request was counted by, when the application gave one. */
  key?: string;
}

/** The limit's state read back from a verdict's headers; undefined when the request matched no limit (a lockout refusal). */
export function infoOf(v: Verdict, wallNowMs: number): RateLimitInfo | undefined {
  const h = v.headers;
  const q = h["ratelimit-limit"];
  if (q === undefined) return undefined;
  const limit = Number(q);
  const remaining = Number(h["ratelimit-remaining"]);
  const reset = Number(h["ratelimit-reset"]);
  return { limit, used: v.allowed ? limit - remaining : limit + 1, remaining, resetTime: new Date(wallNowMs + reset * 1000) };
}

export interface HeaderChoice {
  standard: StandardHeaders | false;
  /** X-RateLimit-Limit / -Remaining / -Reset. */
  x: boolean;
  /** X-RateLimit-Reset as seconds from now (@fastify/rate-limit) instead of epoch seconds (express-rate-limit). */
  xResetRelative?: boolean;
  /** Retry-After on refusals (default true). */
  retryAfter?: boolean;
  /** Rate-limit headers on allowed responses too (default true). */
  onAllowed?: boolean;
}

/** express-rate-limit's `standardHeaders`: true is draft-6, as there. */
export function standardHeadersOption(v: unknown, param = "standardHeaders"): StandardHeaders | false {
  if (v === undefined) return "draft-8";
  if (v === false) return false;
  if (v === true) return "draft-6";
  if (v === "draft-6" || v === "draft-7" || v === "draft-8") return v;
  throw new InvalidArgumentError(param, `must be true, false, "draft-6", "draft-7" or "draft-8"; got ${JSON.stringify(v)}`);
}

/** The response headers of a verdict in the chosen formats. */
export function responseHeaders(v: Verdict, c: HeaderChoice, wallNowMs: number): Record<string, string> {
  const h = v.headers;
  const out: Record<string, string> = {};
  const q = h["ratelimit-limit"];
  const show = q !== undefined && (!v.allowed || c.onAllowed !== false);
  if (show) {
    const r = h["ratelimit-remaining"]!;
    const t = h["ratelimit-reset"]!;
    const w = /;w=(\d+)/.exec(h["ratelimit-policy"] ?? "")?.[1] ?? t;
    switch (c.standard) {
      case "draft-6":
        out["ratelimit-policy"] = `${q};w=${w}`;
        out["ratelimit-limit"] = q;
        out["ratelimit-remaining"] = r;
        out["ratelimit-reset"] = t;
        break;
      case "draft-7":
        out["ratelimit-policy"] = `${q};w=${w}`;
        out["ratelimit"] = `limit=${q}, remaining=${r}, reset=${t}`;
        break;
      case "draft-8":
        out["ratelimit-policy"] = h["ratelimit-policy"]!;
        out["ratelimit"] = h["ratelimit"]!;
        break;
      default:
        break;
    }
    if (c.x) {
      out["x-ratelimit-limit"] = q;
      out["x-ratelimit-remaining"] = r;
      out["x-ratelimit-reset"] = c.xResetRelative === true ? t : String(Math.ceil(wallNowMs / 1000) + Number(t));
    }
  }
  if (!v.allowed && c.retryAfter !== false && h["retry-after"] !== undefined) out["retry-after"] = h["retry-after"];
  return out;
}

/** The key a request was given, kept for the limit's key function (keyed by the framework's request object). */
export class RequestKeys {
  private readonly keys = new WeakMap<object, string>();
  set(req: object, key: unknown, param: string): void {
    if (key === undefined || key === null) return;
    if (typeof key !== "string" && typeof key !== "number") throw new InvalidArgumentError(param, `must return a string, got ${typeof key}`);
    this.keys.set(req, String(key));
  }
  get(req: object): string | undefined {
    return this.keys.get(req);
  }
  /** The limit's key function: the application's key, else (undefined) the client address. */
  readonly fn: KeyFunction = (ctx) => (typeof ctx.req.raw === "object" && ctx.req.raw !== null ? this.keys.get(ctx.req.raw) : undefined);
}

/**
 * Calls `then` with a value or, once settled, a promise's value (no promise
 * when none is needed). A throw in `then` after the wait goes to `fail`, so
 * that it cannot become an unhandled rejection.
 */
export function whenReady<T>(v: T | Promise<T>, then: (t: T) => void, fail: (e: unknown) => void): void {
  if (!(v instanceof Promise)) {
    then(v);
    return;
  }
  v.then((t) => {
    try {
      then(t);
    } catch (e) {
      fail(e);
    }
  }, fail);
}

function isOurStore(s: unknown): s is Store {
  return typeof s === "object" && s !== null && typeof (s as Store).rateAll === "function" && typeof (s as Store).sync === "boolean";
}

function positiveInt(param: string, v: unknown): void {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw new InvalidArgumentError(param, `must be a positive number, got ${JSON.stringify(v)}`);
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
