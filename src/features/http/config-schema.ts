/**
 * Configuration of the `http` listener kind: the per-listener proxy fields
 * (upstream URL, size limits, timeouts) and the `[http]` section (trusted
 * proxies, profile, headers, routes, lockout). Every field is optional or
 * has a default, so configurations without HTTP keep loading. Checks that
 * span fields (which numbers an algorithm needs, one queue per route) are
 * made here, so `check-config` names the key path of a mistake.
 */
import { z } from "zod";
import { InvalidArgumentError } from "../../core/errors.js";
import { HttpLimiter } from "./http-limiter.js";
import { bool, duration, intInRange, nonEmptyString, oneOf, parseHostPort, positiveInt, shown, size, type HostPort } from "../../config/leaves.js";
import { cidr } from "../../net/cidr-leaf.js";
import type { HttpLimiterOptions, KeySpec, LimitConfig, LockoutConfig, PartialLimitConfig, RouteConfig, RouteLockoutConfig } from "./types.js";

/**
 * A listener's upstream: `host:port` (tcp) or an `http://` / `https://` URL
 * (http). Both give host and port; a URL keeps its text in `url`.
 */
export type UpstreamTarget = HostPort & { url?: string };

export const upstreamTarget = z.unknown().transform((v, ctx): UpstreamTarget => {
  if (typeof v === "string" && /^https?:\/\//i.test(v)) {
    const u = urlOf(v);
    if (u !== undefined) {
      const port = u.port === "" ? (u.protocol === "https:" ? 443 : 80) : Number(u.port);
      return { host: u.hostname.replace(/^\[|\]$/g, ""), port, url: v };
    }
  } else {
    const hp = parseHostPort(v);
    if (hp !== undefined) return hp;
  }
  if (typeof v === "string" && USERINFO.test(v)) {
    // Never echo credentials: the message (and any log of it) must not carry the password.
    ctx.addIssue({ code: "custom", message: `expected an upstream without credentials (no "user:password@"), got ${shown(withoutUserinfo(v))}` });
    return z.NEVER;
  }
  ctx.addIssue({ code: "custom", message: `expected "host:port" or an http:// URL such as "http://127.0.0.1:9000", got ${shown(v)}` });
  return z.NEVER;
});

/** Anything up to an "@": a "user[:password]@" (a password may hold "/" or "#", so the last "@" counts). */
const USERINFO = /^(?:[A-Za-z][A-Za-z0-9+.-]*:\/\/)?.*@/s;

/** `v` with everything between the scheme and its last "@" replaced, so no part of the credentials is shown. */
function withoutUserinfo(v: string): string {
  return v.replace(USERINFO, (m) => `${/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(m)?.[0] ?? ""}<redacted>@`);
}

function urlOf(text: string): URL | undefined {
  try {
    const u = new URL(text);
    // Credentials, queries and fragments have no meaning for an upstream and would be logged.
    if (u.username !== "" || u.password !== "" || u.search !== "" || u.hash !== "" || u.hostname === "") return undefined;
    return u;
  } catch {
    return undefined;
  }
}

/** Fields only an `http` listener takes; the HTTP layer's defaults apply when absent (see docs/http.md). */
export const httpListenerFields = {
  /** Largest request head (default 16 KiB); larger gets 431. */
  max_header_size: size.optional(),
  /** Most request headers (default 100). */
  max_headers_count: positiveInt.optional(),
  /** Largest request body (default 1 MiB); larger gets 413. */
  max_body_size: size.optional(),
  /** Time for a client to send its request head (default 10 s, at most request_timeout). */
  headers_timeout: duration.optional(),
  /** Idle time of a kept-alive client connection (default 5 s). */
  keep_alive_timeout: duration.optional(),
  /** Time for the upstream to send its response head (default 30 s). */
  upstream_headers_timeout: duration.optional(),
  /** Longest gap between upstream body chunks (default 30 s). */
  upstream_body_timeout: duration.optional(),
  /** Connections to the upstream (default 64). */
  upstream_connections: positiveInt.optional(),
};

const HTTP_ONLY = Object.keys(httpListenerFields);

/** The http fields as the validated configuration holds them. */
export type HttpListenerSettings = { [K in keyof typeof httpListenerFields]?: z.output<(typeof httpListenerFields)[K]> };

/** What the http front reads of its `[[listener]]` (the gateway passes the whole validated listener). */
export type HttpListenerConfig = HttpListenerSettings & {
  upstream?: UpstreamTarget | undefined;
  request_timeout: number;
  connect_timeout: number;
};

interface ListenerShape {
  kind: string;
  upstream?: UpstreamTarget | undefined;
  request_timeout: number;
  headers_timeout?: number | undefined;
  [k: string]: unknown;
}

/** Cross-field checks of a listener that concern the http kind (call from the listener's superRefine). */
export function refineHttpListener(l: ListenerShape, ctx: z.RefinementCtx): void {
  if (l.kind === "http") {
    if (l.upstream === undefined || l.upstream.url === undefined) {
      ctx.addIssue({ code: "custom", path: ["upstream"], message: 'required for kind "http" as a URL, e.g. "http://127.0.0.1:9000"' });
    }
    const headers = l.headers_timeout ?? Math.min(10_000, l.request_timeout);
    if (headers > l.request_timeout) {
      ctx.addIssue({ code: "custom", path: ["headers_timeout"], message: "must not exceed request_timeout (the head is part of the request)" });
    }
    return;
  }
  if (l.kind !== "connect" && l.upstream?.url !== undefined) {
    ctx.addIssue({ code: "custom", path: ["upstream"], message: `a URL is only for kind "http" (kind ${shown(l.kind)} takes "host:port")` });
  }
  for (const k of HTTP_ONLY) {
    if (l[k] !== undefined) ctx.addIssue({ code: "custom", path: [k], message: 'only for kind "http"' });
  }
}

/** Issues of a nested parse, reported in the loader's words ("unknown key" per key, like the rest of the file). */
function forwardIssues(issues: readonly z.core.$ZodIssue[], ctx: z.RefinementCtx): void {
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys") for (const k of issue.keys) ctx.addIssue({ code: "custom", path: [...issue.path, k], message: "unknown key" });
    else ctx.addIssue({ code: "custom", path: issue.path, message: issue.message });
  }
}

export const PROFILE_NAMES = ["default", "high_trust", "air_gapped", "lockdown"] as const;

const profileTable = z.strictObject({
  name: oneOf(PROFILE_NAMES),
  permit_limit: positiveInt.optional(),
  window: duration.optional(),
  queue_limit: intInRange(0, 1_000_000).optional(),
  lockout_max_failures: positiveInt.optional(),
  lockout_window: duration.optional(),
  lockout_duration: duration.optional(),
});

/** `profile = "lockdown"` or `profile = { name = "lockdown", permit_limit = 8 }`. */
const profile = z
  .unknown()
  .transform((v, ctx): z.output<typeof profileTable> => {
    if (typeof v === "string") {
      const r = oneOf(PROFILE_NAMES).safeParse(v);
      if (r.success) return { name: r.data };
      ctx.addIssue({ code: "custom", message: r.error.issues[0]!.message });
      return z.NEVER;
    }
    const r = profileTable.safeParse(v);
    if (r.success) return r.data;
    forwardIssues(r.error.issues, ctx);
    return z.NEVER;
  })
  .default({ name: "default" });

export const KEY_KINDS = ["ip", "ip_prefix", "client_id", "user", "route", "global"] as const;

const keyTable = z
  .strictObject({
    kind: oneOf(KEY_KINDS),
    /** client_id / user: a request header holding the value. */
    header: nonEmptyString.optional(),
    form_field: nonEmptyString.optional(),
    query_param: nonEmptyString.optional(),
    basic_auth: bool.optional(),
    /** ip_prefix: the network size counted as one client. */
    ipv4_prefix: intInRange(0, 32).optional(),
    ipv6_prefix: intInRange(0, 128).optional(),
  })
  .superRefine((k, ctx) => {
    const identity = k.kind === "client_id" || k.kind === "user";
    for (const f of ["header", "form_field", "query_param", "basic_auth"] as const) {
      if (!identity && k[f] !== undefined) ctx.addIssue({ code: "custom", path: [f], message: 'only for kind "client_id" or "user"' });
    }
    for (const f of ["ipv4_prefix", "ipv6_prefix"] as const) {
      if (k.kind !== "ip_prefix" && k[f] !== undefined) ctx.addIssue({ code: "custom", path: [f], message: 'only for kind "ip_prefix"' });
    }
  });

export type KeySetting = (typeof KEY_KINDS)[number] | z.output<typeof keyTable>;

/** `key = "ip"` or `key = { kind = "client_id", header = "x-client-id" }`. */
const key = z.unknown().transform((v, ctx): KeySetting => {
  if (typeof v === "string") {
    const r = oneOf(KEY_KINDS).safeParse(v);
    if (r.success) return r.data;
    ctx.addIssue({ code: "custom", message: r.error.issues[0]!.message });
    return z.NEVER;
  }
  const r = keyTable.safeParse(v);
  if (r.success) return r.data;
  forwardIssues(r.error.issues, ctx);
  return z.NEVER;
});

export const ALGORITHMS = ["fixed_window", "token_bucket", "gcra", "sliding_window"] as const;

/** The fields each algorithm takes (name, key and shadow go with every one). */
const ALGORITHM_FIELDS: Record<(typeof ALGORITHMS)[number] | "profile", { required: string[]; allowed: string[] }> = {
  fixed_window: { required: ["permit_limit", "window"], allowed: ["permit_limit", "window", "queue_limit"] },
  token_bucket: { required: ["rate"], allowed: ["rate", "period", "burst"] },
  gcra: { required: ["rate"], allowed: ["rate", "period", "burst"] },
  sliding_window: { required: ["limit", "window"], allowed: ["limit", "window"] },
  // No algorithm: a fixed window whose missing numbers come from the profile.
  profile: { required: [], allowed: ["permit_limit", "window", "queue_limit"] },
};

const limit = z
  .strictObject({
    algorithm: oneOf(ALGORITHMS).optional(),
    name: nonEmptyString.optional(),
    permit_limit: positiveInt.optional(),
    window: duration.optional(),
    queue_limit: intInRange(0, 1_000_000).optional(),
    rate: positiveInt.optional(),
    period: duration.optional(),
    burst: positiveInt.optional(),
    limit: positiveInt.optional(),
    key: key.optional(),
    shadow: bool.optional(),
  })
  .superRefine((l, ctx) => {
    const spec = ALGORITHM_FIELDS[l.algorithm ?? "profile"];
    const numeric = ["permit_limit", "window", "queue_limit", "rate", "period", "burst", "limit"] as const;
    const how = l.algorithm === undefined ? "without an algorithm (a fixed window from the profile)" : `for algorithm ${shown(l.algorithm)}`;
    for (const f of numeric) {
      if (l[f] !== undefined && !spec.allowed.includes(f)) ctx.addIssue({ code: "custom", path: [f], message: `not used ${how}` });
    }
    for (const f of spec.required) {
      if (l[f as (typeof numeric)[number]] === undefined) ctx.addIssue({ code: "custom", path: [f], message: `required ${how}` });
    }
  });

export type LimitSetting = z.output<typeof limit>;

const METHOD = /^[A-Z][A-Z0-9-]{0,31}$/;
const method = z.unknown().transform((v, ctx): string => {
  if (typeof v === "string" && METHOD.test(v.toUpperCase())) return v.toUpperCase();
  ctx.addIssue({ code: "custom", message: `expected an HTTP method such as "GET" or "POST", got ${shown(v)}` });
  return z.NEVER;
});

/** A path pattern: "/token", "/internal/*", "/users/:id", or "*". */
const pattern = z.unknown().transform((v, ctx): string => {
  if (typeof v === "string" && v.length <= 1024 && (v === "*" || v.startsWith("/")) && !/[\s?#]/.test(v)) return v;
  ctx.addIssue({ code: "custom", message: `expected a path pattern such as "/token", "/internal/*" or "*", got ${shown(v)}` });
  return z.NEVER;
});

const statusCode = intInRange(100, 599);

const routeLockout = z.union([
  bool,
  z.strictObject({
    subject: oneOf(["user", "client_id"] as const).default("user"),
    failure_statuses: z.array(statusCode).min(1, "expected at least one status").default([401]),
    success_resets: bool.default(true),
  }),
]);

const route = z
  .strictObject({
    /** Name in RateLimit-Policy, logs and metrics (default: the pattern). */
    name: nonEmptyString.optional(),
    match: pattern,
    methods: z.array(method).min(1, "expected at least one method (leave methods out for all)").optional(),
    limit: limit.optional(),
    limits: z.array(limit).min(1, "expected at least one limit").optional(),
    /** Shadow every limit of the route: computed and logged, never enforced. */
    shadow: bool.default(false),
    lockout: routeLockout.optional(),
  })
  .superRefine((r, ctx) => {
    if (r.limit !== undefined && r.limits !== undefined) ctx.addIssue({ code: "custom", path: ["limits"], message: "give either limit or limits, not both" });
    const queued = (r.limits ?? []).filter((l) => (l.queue_limit ?? 0) > 0).length;
    if (queued > 1) ctx.addIssue({ code: "custom", path: ["limits"], message: "at most one limit of a route may have a queue_limit" });
  });

export type RouteSetting = z.output<typeof route>;

const lockout = z.strictObject({
  /** Failures within `window` that lock a subject (default: the profile's). */
  max_failures: positiveInt.optional(),
  window: duration.optional(),
  /** Length of the first lock (default: the profile's); each further one is `multiplier` times longer. */
  duration: duration.optional(),
  multiplier: positiveInt.optional(),
  max_duration: duration.optional(),
  retention: duration.optional(),
  max_subjects: positiveInt.optional(),
  case_sensitive: bool.optional(),
  shadow: bool.optional(),
});

export const HEADER_MODES = ["draft", "legacy", "x"] as const;

/** The `[http]` section: rules every `http` listener applies. */
export const httpSection = z.strictObject({
  /** Proxies whose X-Forwarded-For / Forwarded headers are believed. */
  trusted_proxies: z.array(cidr).default([]),
  profile,
  /** Rate-limit header style: "draft" (RateLimit-Policy / RateLimit), "legacy" (RateLimit-Limit ...), "x" (X-RateLimit-*). */
  headers: oneOf(HEADER_MODES).default("draft"),
  /** Send the rate-limit headers on allowed responses too. */
  headers_on_allowed: bool.default(true),
  /** Match route patterns case-sensitively. */
  case_sensitive: bool.default(false),
  /** Most keys each limit tracks. */
  max_keys: positiveInt.default(100_000),
  lockout: lockout.prefault({}),
  route: z.array(route).default([]),
}).superRefine((s, ctx) => {
  // The HTTP layer checks what the schema cannot see alone (a pattern it cannot compile, numbers a profile leaves invalid);
  // after a problem found above, it would only repeat it.
  if (ctx.issues.length > 0) return;
  try {
    new HttpLimiter(limiterOptionsOf(s)).dispose();
  } catch (e) {
    if (!(e instanceof InvalidArgumentError)) throw e;
    // "routes[2].limits[0].permitLimit" becomes the path http.route[2] and a message naming the rest.
    const m = /^routes\[(\d+)\]\.?(.*)$/.exec(e.param);
    if (m) ctx.addIssue({ code: "custom", path: ["route", Number(m[1])], message: e.message.slice(e.param.length - m[2]!.length).replace(/^: /, "") });
    else ctx.addIssue({ code: "custom", message: e.message });
  }
});

export type HttpSection = z.output<typeof httpSection>;

/** What the http front reads of the whole configuration: the `[http]` section. */
export interface HttpRootConfig {
  http: HttpSection;
}

// The `[http]` section as options of the HTTP layer (src/features/http): snake_case to camelCase, durations
// already in milliseconds, "draft" headers to the layer's "ietf" format.

/** Limiter rules from the `[http]` section (logger, hooks and clock are the caller's). */
export function limiterOptionsOf(s: HttpSection): HttpLimiterOptions {
  const { name, permit_limit, window, queue_limit, lockout_max_failures, lockout_window, lockout_duration } = s.profile;
  return {
    profile: dropUndefined({
      name,
      permitLimit: permit_limit,
      windowMs: window,
      queueLimit: queue_limit,
      lockoutMaxFailures: lockout_max_failures,
      lockoutWindowMs: lockout_window,
      lockoutDurationMs: lockout_duration,
    }) as HttpLimiterOptions["profile"],
    trustedProxies: [...s.trusted_proxies],
    headers: { format: s.headers === "draft" ? "ietf" : s.headers, onAllowed: s.headers_on_allowed },
    caseSensitive: s.case_sensitive,
    maxKeys: s.max_keys,
    lockout: lockoutOf(s.lockout),
    routes: s.route.map(routeOf),
  };
}

function lockoutOf(l: HttpSection["lockout"]): LockoutConfig {
  return dropUndefined({
    maxFailures: l.max_failures,
    windowMs: l.window,
    durationMs: l.duration,
    multiplier: l.multiplier,
    maxDurationMs: l.max_duration,
    retentionMs: l.retention,
    maxSubjects: l.max_subjects,
    caseSensitive: l.case_sensitive,
    shadow: l.shadow,
  });
}

function routeOf(r: RouteSetting): RouteConfig {
  const out: RouteConfig = { match: r.match };
  if (r.name !== undefined) out.name = r.name;
  if (r.methods !== undefined) out.methods = [...r.methods];
  if (r.limit !== undefined) out.limit = limitOf(r.limit, r.shadow);
  if (r.limits !== undefined) out.limits = r.limits.map((l) => limitOf(l, r.shadow));
  if (r.lockout !== undefined) out.lockout = lockoutRouteOf(r.lockout);
  return out;
}

function lockoutRouteOf(l: NonNullable<RouteSetting["lockout"]>): RouteLockoutConfig | boolean {
  if (typeof l === "boolean") return l;
  return { subject: l.subject, failureStatuses: [...l.failure_statuses], successResets: l.success_resets };
}

function limitOf(l: LimitSetting, routeShadow: boolean): LimitConfig | PartialLimitConfig {
  const common = dropUndefined({ name: l.name, key: l.key === undefined ? undefined : keyOf(l.key), shadow: l.shadow ?? (routeShadow || undefined) });
  switch (l.algorithm) {
    case "fixed_window":
      return { ...common, algorithm: "fixed_window", permitLimit: l.permit_limit!, windowMs: l.window!, queueLimit: l.queue_limit ?? 0 };
    case "token_bucket":
    case "gcra":
      return { ...common, algorithm: l.algorithm, rate: l.rate!, ...dropUndefined({ periodMs: l.period, burst: l.burst }) };
    case "sliding_window":
      return { ...common, algorithm: "sliding_window", limit: l.limit!, windowMs: l.window! };
    default:
      return { ...common, ...dropUndefined({ permitLimit: l.permit_limit, windowMs: l.window, queueLimit: l.queue_limit }) };
  }
}

function keyOf(k: KeySetting): KeySpec {
  if (typeof k === "string") return k;
  switch (k.kind) {
    case "ip_prefix":
      return { kind: "ip_prefix", ...dropUndefined({ ipv4Prefix: k.ipv4_prefix, ipv6Prefix: k.ipv6_prefix }) };
    case "client_id":
    case "user":
      return { kind: k.kind, ...dropUndefined({ header: k.header, formField: k.form_field, queryParam: k.query_param, basicAuth: k.basic_auth }) };
    default:
      return { kind: k.kind };
  }
}

/** The object without its undefined fields (the layer treats a present undefined like a value in places). */
export function dropUndefined<T extends Record<string, unknown>>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as { [K in keyof T]: Exclude<T[K], undefined> };
}
