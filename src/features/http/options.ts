/**
 * The configuration of an `http` listener mapped onto the proxy options of
 * the HTTP layer (src/features/http/proxy): snake_case to camelCase, durations
 * already in milliseconds. The `[http]` section's mapping onto the limiter
 * options is beside its schema (config-schema.ts, `limiterOptionsOf`), which
 * checks a section by building a limiter from it. The table in docs/http.md
 * is these two in prose.
 */
import type { HttpProxyOptions } from "./proxy/server.js";
import { dropUndefined } from "./config-schema.js";
import type { HttpListenerConfig } from "./gateway-view.js";

/** Proxy options of one `http` listener; fields left out take the HTTP layer's defaults. */
export function proxyOptionsOf(l: HttpListenerConfig): Omit<HttpProxyOptions, "rules" | "logger"> {
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
