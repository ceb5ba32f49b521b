/**
 * The shapes the HTTP layer is configured with and speaks in. Configuration
 * is a plain typed object (times in milliseconds, camelCase); the gateway's
 * config loader maps TOML onto it (see docs/http.md).
 */
import type { IncomingHttpHeaders } from "node:http";
import type { Clock } from "../../core/clock.js";
import type { Store } from "../../stores/store.js";
import type { ProfileName, ProfileOverrides } from "./profiles.js";

/** What the core needs to know about a request, whatever the framework. */
export interface RequestInfo {
  method: string;
  /** The request target as received (path and query). */
  url: string;
  headers: IncomingHttpHeaders;
  /**
   * The raw header list (name, value, name, value ...), when the adapter has
   * it. Node builds `headers` lazily from it on first access; the core only
   * scans this list on the common path, so a request whose application never
   * reads its headers does not pay for building them.
   */
  rawHeaders?: readonly string[];
  /** Address of the direct peer (the socket), before any proxy header is considered. */
  remoteAddress: string | undefined;
  /** A parsed body (Express / Fastify / our own form reader), when the framework has one. */
  body?: unknown;
  /** The framework's request object, for custom key functions. */
  raw?: unknown;
}

/** A request as key functions see it: the request info plus what the core derived from it. */
export interface KeyContext {
  readonly req: RequestInfo;
  /** Normalised path (no query), lower-cased unless routes match case-sensitively. */
  readonly path: string;
  /** Client address after the trusted-proxy rules. */
  readonly clientIp: string;
  /** Name of the matched route. */
  readonly route: string;
}

/** Returns a key, or undefined when the request has none (the limit then falls back to the client IP). */
export type KeyFunction = (ctx: KeyContext) => string | undefined;

/** Where a client id or user name is read from; the first source that yields a value wins. */
export interface IdentitySource {
  /** Request header holding the value. */
  header?: string;
  /** Field of an application/x-www-form-urlencoded (or already parsed) body. */
  formField?: string;
  /** Query-string parameter. */
  queryParam?: string;
  /** The user name of an `Authorization: Basic` header (OAuth client_secret_basic). */
  basicAuth?: boolean;
  /** Anything else. */
  from?: KeyFunction;
}

/** What a limit counts by. */
export type KeySpec =
  | "ip"
  | "ip_prefix"
  | "client_id"
  | "user"
  | "route"
  | "global"
  | { kind: "ip" }
  | { kind: "ip_prefix"; ipv4Prefix?: number; ipv6Prefix?: number }
  | ({ kind: "client_id" } & IdentitySource)
  | ({ kind: "user" } & IdentitySource)
  | { kind: "route" }
  | { kind: "global" }
  | { kind: "custom"; fn: KeyFunction }
  | KeyFunction;

interface LimitCommon {
  /** Policy name shown in RateLimit-Policy and in logs/metrics (default: the route name, suffixed when a route has several limits). */
  name?: string;
  /** What the limit counts by (default "ip"). */
  key?: KeySpec;
  /** Compute and report, never reject. */
  shadow?: boolean;
}

export type LimitConfig = LimitCommon &
  (
    | { algorithm: "fixed_window"; permitLimit: number; windowMs: number; queueLimit?: number }
    | { algorithm: "token_bucket" | "gcra"; rate: number; periodMs?: number; burst?: number }
    | { algorithm: "sliding_window"; limit: number; windowMs: number }
  );

/** A fixed window whose missing fields come from the selected profile. */
export type PartialLimitConfig = LimitCommon & {
  algorithm?: undefined;
  permitLimit?: number;
  windowMs?: number;
  queueLimit?: number;
};

/** Lockout on one route: whose failures count and which responses are failures. */
export interface RouteLockoutConfig {
  /** The subject (user or client id); default: the `username` form field. */
  subject?: "user" | "client_id" | ({ kind: "user" | "client_id" } & IdentitySource) | KeyFunction;
  /** Response statuses that count as a failed login (default [401]). */
  failureStatuses?: number[];
  /** Whether a 2xx response clears the subject's failures (default true). */
  successResets?: boolean;
}

export interface RouteConfig {
  /** Name used in policies, logs and metrics (default: the match pattern). */
  name?: string;
  /** Path pattern: "/token", "/internal/*" (the prefix and everything below it), "/users/:id". */
  match: string;
  /** Methods this route applies to (default: all). */
  methods?: string[];
  /** One limit; without `limit` or `limits` the profile's fixed window applies, keyed by IP. */
  limit?: LimitConfig | PartialLimitConfig;
  /** Several limits, all enforced (for example per IP and per client id). */
  limits?: (LimitConfig | PartialLimitConfig)[];
  /** Enforce and feed the subject lockout on this route. */
  lockout?: RouteLockoutConfig | boolean;
}

/** Subject lockout: `maxFailures` failures within `windowMs` lock the subject for `durationMs`, longer each time. */
export interface LockoutConfig {
  maxFailures?: number;
  windowMs?: number;
  durationMs?: number;
  /** Each further lockout lasts this many times the previous one (default 2). */
  multiplier?: number;
  maxDurationMs?: number;
  /** How long a subject's record (and so its escalation) is kept after it goes quiet (default 24 h). */
  retentionMs?: number;
  /** Most subjects tracked (default 65,536). */
  maxSubjects?: number;
  /** Tell subjects apart by case (default false: "Alice" and "alice" are one account). */
  caseSensitive?: boolean;
  shadow?: boolean;
}

export type HeaderFormat = "ietf" | "legacy" | "x";

export interface HeaderOptions {
  /**
   * "ietf": RateLimit-Policy / RateLimit (current draft, Structured Fields).
   * "legacy": RateLimit-Limit / -Remaining / -Reset.
   * "x": X-RateLimit-Limit / -Remaining / -Reset (reset as epoch seconds).
   * Several may be sent together. Default "ietf".
   */
  format?: HeaderFormat | HeaderFormat[];
  /** Send the rate-limit headers on allowed responses too (default true). */
  onAllowed?: boolean;
}

export interface ProblemOptions {
  type?: string;
  title?: string;
  detail?: string;
}

/** Structured logger; fields are flat key/values. */
export interface HttpLogger {
  warn(msg: string, fields: Record<string, unknown>): void;
  info(msg: string, fields: Record<string, unknown>): void;
  /**
   * A request refused with 429, once per refusal. When the logger has this
   * method it receives the refusal instead of the `request throttled` /
   * `request refused: subject locked out` warnings, so it can write the event
   * its own way (the gateway's `event=limited` line).
   */
  limited?(e: HttpLimitedEvent): void;
}

/**
 * The tags of a refused request, as the auth-server guide asks for them: the
 * endpoint, the limit, the client's address and id, the correlation id and
 * the wait. Never a password: `client_id` is at most a Basic user name.
 */
export interface HttpLimitedEvent {
  /** The matched route's name. */
  endpoint: string;
  /** The policy name, or "lockout". */
  limiter: string;
  /** What the limit counts by: ip, ip_prefix, client_id, user, route, global, custom; "subject" for the lockout. */
  key: string;
  /** The engine's reason: rate_limited, queue_full, locked_out, ... */
  reason: string;
  remote_ip: string;
  method: string;
  path: string;
  /** Seconds the client is told to wait (the Retry-After header). */
  retry_after: number;
  client_id: string | undefined;
  request_id: string | undefined;
  /** The locked subject (a user name), for a lockout refusal. */
  subject?: string;
}

/** Anything with prom-client's Counter#inc signature. */
export interface CounterLike<L extends string> {
  inc(labels: Partial<Record<L, string>>, value?: number): void;
}

/** Observation hooks; metrics are wired here (no global registry is touched). */
export interface HttpHooks {
  /** portcullis_http_rejections_total{route,limiter}: `limiter` is the policy name, or "lockout". */
  rejections?: CounterLike<"route" | "limiter">;
  onReject?(route: string, limiter: string): void;
  onShadowReject?(route: string, limiter: string): void;
  onQueued?(route: string, limiter: string): void;
  onLockout?(subject: string, untilMs: number): void;
}

export interface HttpLimiterOptions {
  routes: RouteConfig[];
  /** Preset for routes without explicit numbers and for the lockout (default "default"). */
  profile?: ProfileName | ({ name: ProfileName } & ProfileOverrides);
  lockout?: LockoutConfig;
  /** CIDRs (or addresses) of proxies whose X-Forwarded-For / Forwarded headers are believed. */
  trustedProxies?: string[];
  headers?: HeaderOptions;
  /** The 429 body; false sends an empty body. */
  problem?: ProblemOptions | false;
  /** Headers carrying a request id, first present wins (default ["x-request-id", "x-correlation-id"]). */
  requestIdHeaders?: string[];
  /** Default IP keying (IPv4 /32, IPv6 /64). */
  ipv4Prefix?: number;
  ipv6Prefix?: number;
  /**
   * Match route patterns case-sensitively (default false: "/TOKEN" counts as
   * "/token", as Express routes it; turn on only if the application's router
   * is case-sensitive and the two paths are different resources).
   */
  caseSensitive?: boolean;
  /** Largest form body read to find a form-field key (default 64 KiB). */
  formBodyLimit?: number;
  logger?: HttpLogger;
  hooks?: HttpHooks;
  /**
   * The limits' clock on a store without one of its own (memory), and the
   * clock of the local parts (queue timers, headers). Limits on a store that
   * keeps time (Redis) read the store's clock, so every instance agrees.
   */
  clock?: Clock;
  /**
   * Where route limits, queue places and (on a shared store) the subject
   * lockout live. A memory store (the default, one of the limiter's own)
   * answers synchronously; a shared one (Redis) makes every instance on it
   * count together, with decisions answered asynchronously.
   */
  store?: Store;
  /**
   * Names this limiter's state in its store: limits are `http:<scope>:<policy>`
   * and the lockout box `http-lockout:<scope>` (default: no scope,
   * `http:<policy>` and `http-lockout`). Limiters with the same scope and
   * policy names on one shared store count together, so give each
   * independent set of rules its own scope (the gateway uses the listener's name).
   */
  scope?: string;
  /** Most keys per limit when no store is given (default 100,000). */
  maxKeys?: number;
}
