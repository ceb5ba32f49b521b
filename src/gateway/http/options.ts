/**
 * The configuration of an `http` listener mapped onto the options of the
 * HTTP layer (src/http): snake_case to camelCase, durations already in
 * milliseconds, "draft" headers to the layer's "ietf" format. The table in
 * docs/http.md is this file in prose.
 */
import type { ListenerConfig } from "../../config/schema.js";
import type { HttpProxyOptions } from "../../http/proxy/server.js";
import type { HttpLimiterOptions, KeySpec, LimitConfig, LockoutConfig, PartialLimitConfig, RouteConfig, RouteLockoutConfig } from "../../http/types.js";
import type { HttpSection, KeySetting, LimitSetting, RouteSetting } from "./config-schema.js";

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

/** Proxy options of one `http` listener; fields left out take the HTTP layer's defaults. */
export function proxyOptionsOf(l: ListenerConfig): Omit<HttpProxyOptions, "rules" | "logger"> {
  return dropUndefined({
    upstream: l.upstream?.url ?? "",
    maxHeaderSize: l.max_header_size,
    maxHeadersCount: l.max_headers_count,
    maxBodySize: l.max_body_size,
    headersTimeoutMs: l.headers_timeout ?? Math.min(10_000, l.request_timeout),
    requestTimeoutMs: l.request_timeout,
    keepAliveTimeoutMs: l.keep_alive_timeout,
    upstreamConnectTimeoutMs: l.connect_timeout,
    upstreamHeadersTimeoutMs: l.upstream_headers_timeout,
    upstreamBodyTimeoutMs: l.upstream_body_timeout,
    upstreamConnections: l.upstream_connections,
  }) as Omit<HttpProxyOptions, "rules" | "logger">;
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
function dropUndefined<T extends Record<string, unknown>>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as { [K in keyof T]: Exclude<T[K], undefined> };
}
