/**
 * The effective configuration as the operator would write it: defaults
 * filled in, durations printed as durations, secrets redacted.
 */
import { formatDuration } from "../../config/duration.js";
import type { Config } from "./schema.js";
import { redactUrl } from "../store/config-schema.js";

export const REDACTED = "<redacted>";

const DURATION_KEYS = new Set([
  "window",
  "duration",
  "max_duration",
  "backoff_base",
  "backoff_max",
  "idle_timeout",
  "request_timeout",
  "connect_timeout",
  "handshake_timeout",
  // udp listener
  "flow_idle_timeout",
  // http listener and [http] section
  "headers_timeout",
  "keep_alive_timeout",
  "upstream_headers_timeout",
  "upstream_body_timeout",
  "period",
  "retention",
  "lockout_window",
  "lockout_duration",
  // probe_resistance (delay floor and ceiling, relay total time) and a listener's postgres policy
  "floor",
  "ceiling",
  "total_timeout",
  "cache_ttl",
  // top level
  "shutdown_timeout",
  // [auth]
  "max_verification_wait",
  "trusted_ttl",
  // [store]
  "lease_ttl",
  "timeout",
  // [log]
  "long_retry_after",
]);

function render(v: unknown, key: string): unknown {
  if (typeof v === "number" && DURATION_KEYS.has(key)) return formatDuration(v);
  if (Array.isArray(v)) return v.map((x) => render(x, ""));
  if (typeof v === "object" && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = render(x, k);
    return out;
  }
  return v;
}

export function effectiveConfig(c: Config): Record<string, unknown> {
  const out = render(c, "") as Record<string, unknown>;
  // Password hashes are secrets too: a leaked scrypt hash can be attacked offline.
  out.users = Object.fromEntries(Object.keys(c.users).map((u) => [u, REDACTED]));
  for (const l of out.listener as Array<Record<string, unknown>>) {
    if (l.bind && typeof l.bind === "object") l.bind = hostPortText(l.bind as { host: string; port: number });
    if (l.upstream && typeof l.upstream === "object") {
      // An http listener's upstream is a URL: print it as written.
      const up = l.upstream as { host: string; port: number; url?: string };
      l.upstream = up.url ?? hostPortText(up);
    }
    // A postgres policy URL may carry a password.
    const pol = l.policy as { url?: string } | undefined;
    if (pol?.url !== undefined) pol.url = pol.url.replace(/\/\/([^:/@]*):[^@/]*@/, `//$1:${REDACTED}@`);
  }
  // A Redis URL may carry a password.
  const store = out.store as { url?: string };
  if (store.url !== undefined) store.url = redactUrl(store.url, REDACTED);
  const admin = out.admin as Record<string, unknown>;
  if (admin.token !== undefined) admin.token = REDACTED;
  if (admin.bind && typeof admin.bind === "object") admin.bind = hostPortText(admin.bind as { host: string; port: number });
  return out;
}

function hostPortText(hp: { host: string; port: number }): string {
  return hp.host.includes(":") ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}
