/**
 * The configuration schema, one source for validation, defaults and types.
 * Every field has a default except what only the operator can know (a
 * listener's name, kind and bind address; a tcp listener's upstream), so a
 * file written before a field existed keeps loading. Unknown keys are
 * refused: a typo must not silently fall back to a default.
 *
 * The gateway composes it: each feature's section or listener fields live
 * with the feature (../http, ../bandwidth, ../masking, ../permissions,
 * ../udp config-schema.ts), the leaves and the loader in src/config, which
 * knows no feature. No section imports this file: what a section checks
 * across fields of a listener it reads from the listener it is given.
 */
import { availableParallelism } from "node:os";
import { z } from "zod";
import { isPasswordHash } from "../identity/passwords.js";
import {
  bool,
  dottedOid,
  duration,
  durationOrZero,
  hostPort,
  intInRange,
  nonEmptyString,
  oneOf,
  positiveInt,
  shown,
  size,
} from "../../config/leaves.js";
import { cidr } from "../../net/cidr-leaf.js";
import { filePath } from "../../config/file-paths.js";
import { bandwidthSection } from "../../features/bandwidth/config-schema.js";
import { storeSection } from "../store/config-schema.js";
import { authSection } from "../identity/config-schema.js";
import { MIN_TOKEN_LENGTH } from "./admin-token.js";
// http listener kind: its listener fields and the [http] section live in their own module.
import { httpListenerFields, httpSection, refineHttpListener, upstreamTarget } from "../../features/http/config-schema.js";
// Probe resistance (masking), permissions ([policy] and signed PostgreSQL permissions) and the udp kind: their fields live in their own modules.
import { probeListenerFields, refineProbeListener } from "../../features/probe-resistance/config-schema.js";
import { permissionListenerFields, policySection, refinePermissionListener } from "../../features/permissions/config-schema.js";
import { refineUdpListener, udpListenerFields } from "../../features/udp/config-schema.js";

/**
 * A limit written either as a bare number or as a table with `shadow`:
 * `max_connections_per_ip = 100` or `max_connections_per_ip = { limit = 100, shadow = true }`.
 * A shadow limit is counted and logged, never enforced.
 */
function cap(defaultLimit: number) {
  const table = z.strictObject({ limit: positiveInt, shadow: bool.default(false) });
  return z
    .unknown()
    .transform((v, ctx): { limit: number; shadow: boolean } => {
      if (v === undefined) return { limit: defaultLimit, shadow: false };
      if (typeof v === "object" && v !== null && !Array.isArray(v)) {
        const r = table.safeParse(v);
        if (r.success) return r.data;
        for (const issue of r.error.issues) ctx.addIssue({ ...issue, code: "custom", path: issue.path, message: issue.message } as never);
        return z.NEVER;
      }
      const r = positiveInt.safeParse(v);
      if (r.success) return { limit: r.data, shadow: false };
      ctx.addIssue({ code: "custom", message: `expected a positive integer, got ${shown(v)}` });
      return z.NEVER;
    })
    .default({ limit: defaultLimit, shadow: false });
}

const rate = z.strictObject({
  limit: positiveInt,
  window: duration,
  shadow: bool.default(false),
});

const prefixRate = z.strictObject({
  limit: positiveInt,
  window: duration,
  ipv4_prefix: intInRange(0, 32).default(24),
  ipv6_prefix: intInRange(0, 128).default(64),
  shadow: bool.default(false),
});

const ban = z.strictObject({
  /** Failures inside `window` that start a ban. */
  failures: positiveInt.default(10),
  window: duration.default(60_000),
  /** Length of the first ban; each repeat ban doubles, up to max_duration. */
  duration: duration.default(600_000),
  max_duration: duration.default(86_400_000),
  /** From this many consecutive failures on, auth attempts back off before the ban. */
  backoff_after: positiveInt.default(4),
  backoff_base: duration.default(25),
  backoff_max: duration.default(1000),
  shadow: bool.default(false),
});

/** Defensive mode: what the guard does while its failed-login table is full of live entries (docs/gateway.md). */
const saturation = z.strictObject({
  /** How long the mode lasts after the table last had to drop (or would have dropped) a live entry. */
  duration: duration.default(600_000),
  /** While it lasts, failures of untracked addresses count against these prefixes. */
  ipv4_prefix: intInRange(1, 32).default(24),
  ipv6_prefix: intInRange(1, 128).default(48),
  /** Size of the prefix table. */
  max_prefixes: positiveInt.default(16_384),
});

const guard = z.strictObject({
  max_connections_per_ip: cap(100),
  max_connections: cap(10_000),
  connection_rate: rate.optional(),
  prefix_connection_rate: prefixRate.optional(),
  max_auth_attempts: positiveInt.default(3),
  ban: ban.prefault({}),
  /** Addresses (IPv6: prefixes) the failed-login table tracks; memory per entry in docs/memory.md. */
  max_tracked: positiveInt.default(65_536),
  saturation: saturation.prefault({}),
  ban_closes_connections: bool.default(true),
  /** IPv6 clients are counted and banned by this prefix (one /64 is usually one subscriber). */
  ipv6_prefix: intInRange(1, 128).default(64),
  allow: z.array(cidr).default([]),
  deny: z.array(cidr).default([]),
});

const identitySource = z
  .unknown()
  .transform((v, ctx): { kind: "cn" } | { kind: "san_uri" } | { kind: "oid"; oid: string } => {
    if (v === undefined || v === "cn") return { kind: "cn" };
    if (v === "san_uri") return { kind: "san_uri" };
    if (typeof v === "object" && v !== null && "oid" in v && Object.keys(v).length === 1) {
      const r = dottedOid.safeParse((v as { oid: unknown }).oid);
      if (r.success) return { kind: "oid", oid: r.data };
      ctx.addIssue({ code: "custom", path: ["oid"], message: r.error.issues[0]!.message });
      return z.NEVER;
    }
    ctx.addIssue({ code: "custom", message: `expected "cn", "san_uri" or { oid = "1.2.3..." }, got ${shown(v)}` });
    return z.NEVER;
  })
  .default({ kind: "cn" });

/** File paths resolve from the configuration file's folder (docs/configuration.md). */
const tls = z.strictObject({
  cert: filePath,
  key: filePath,
  /** CA bundle for client certificates (mTLS); without it no client certificate is asked for. */
  client_ca: filePath.optional(),
  /** Where the identity comes from in a client certificate. */
  identity: identitySource,
  /** Refuse clients without a valid certificate (otherwise they may fall back to Basic auth). */
  require_client_cert: bool.default(false),
  handshake_timeout: duration.default(10_000),
});

export const LISTENER_KINDS = ["connect", "tcp", "http", "udp"] as const;

/**
 * A listener's name goes unquoted into logfmt lines, metric labels and
 * fail2ban filters: 1-64 ASCII letters, digits, ".", "_" or "-", starting
 * with a letter or digit (so no control characters, spaces or quotes).
 */
const LISTENER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const listenerName = z.unknown().transform((v, ctx): string => {
  if (typeof v === "string" && LISTENER_NAME.test(v)) return v;
  ctx.addIssue({ code: "custom", message: `expected 1-64 ASCII letters, digits, ".", "_" or "-" (starting with a letter or digit), got ${shown(v)}` });
  return z.NEVER;
});

const listener = z
  .strictObject({
    name: listenerName,
    kind: oneOf(LISTENER_KINDS),
    bind: hostPort,
    tls: tls.optional(),
    /** tcp: where accepted connections are relayed ("host:port"); http: the upstream URL. */
    upstream: upstreamTarget.optional(),
    /** A connection with no bytes either way for this long is closed. */
    idle_timeout: duration.default(300_000),
    /** connect: the whole CONNECT request head must arrive within this time (slow clients are closed). */
    request_timeout: duration.default(10_000),
    /** connect: largest CONNECT request head accepted. */
    max_request_bytes: size.default(16 * 1024),
    connect_timeout: duration.default(10_000),
    /** http: proxy limits and timeouts (optional; defaults in docs/http.md). */
    ...httpListenerFields,
    // udp: per-client caps and the flow table (defaults in src/features/udp/udp-listener.ts; no caps = unlimited).
    ...udpListenerFields,
    // connect / TLS tcp: probe resistance (mask host, delays, caps) and the TLS names served.
    ...probeListenerFields,
    // connect: signed PostgreSQL permissions instead of [[policy.rule]].
    ...permissionListenerFields,
  })
  .superRefine((l, ctx) => {
    refineProbeListener(l, ctx);
    refinePermissionListener(l, ctx);
  })
  .superRefine((l, ctx) => refineUdpListener(l, ctx))
  .superRefine((l, ctx) => {
    if (l.kind === "tcp" && l.upstream === undefined) {
      ctx.addIssue({ code: "custom", path: ["upstream"], message: 'required for kind "tcp", e.g. "127.0.0.1:9000"' });
    }
    if (l.kind === "connect" && l.upstream !== undefined) {
      ctx.addIssue({ code: "custom", path: ["upstream"], message: 'only for kind "tcp" (a connect listener goes where the client asks)' });
    }
    refineHttpListener(l, ctx);
  });

const passwordHash = z.unknown().transform((v, ctx): string => {
  if (typeof v === "string" && isPasswordHash(v)) return v;
  // Never echo the value: it may be a plain-text password written by mistake.
  ctx.addIssue({ code: "custom", message: "expected a scrypt hash made by `portcullis hash-password`" });
  return z.NEVER;
});

/** The admin listener: API, /metrics, health probes and dashboard. Off unless enabled; needs a token to start. */
const admin = z.strictObject({
  enabled: bool.default(false),
  bind: hostPort.default({ host: "127.0.0.1", port: 9090 }),
  /** Prefer token_env: a token in a file is a token in backups. At least MIN_TOKEN_LENGTH characters; never echoed. */
  token: z
    .unknown()
    .transform((v, ctx): string => {
      if (typeof v === "string" && v.length >= MIN_TOKEN_LENGTH) return v;
      ctx.addIssue({ code: "custom", message: `expected a string of at least ${MIN_TOKEN_LENGTH} characters (the value is not shown)` });
      return z.NEVER;
    })
    .optional(),
  token_env: nonEmptyString.default("PORTCULLIS_ADMIN_TOKEN"),
  rate_limit: z
    .strictObject({
      strategy: oneOf(["path", "endpoint", "global"] as const).default("endpoint"),
      limit: positiveInt.default(20),
      window: duration.default(1000),
      burst: positiveInt.default(40),
    })
    .prefault({}),
});

/** Most worker processes accepted: far above any core count, low enough that a typo cannot fork a storm. */
const MAX_WORKERS = 256;

/** Worker processes: a whole number, or "auto" for one per CPU the process may use. */
const workers = z.unknown().transform((v, ctx): number => {
  if (v === "auto") return Math.min(availableParallelism(), MAX_WORKERS);
  if (typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= MAX_WORKERS) return v;
  ctx.addIssue({ code: "custom", message: `expected an integer from 1 to ${MAX_WORKERS} or "auto", got ${shown(v)}` });
  return z.NEVER;
});

export const configSchema = z.strictObject({
  /** Where the gateway counts: this process (memory) or a Redis shared by a fleet (docs/configuration.md, [store]). */
  store: storeSection.prefault({}),
  log: z
    .strictObject({
      format: oneOf(["json", "logfmt"] as const).default("json"),
      level: oneOf(["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const).default("info"),
      audit_destinations: bool.default(false),
      /** A refusal whose client must wait longer than this is flagged `long_retry_after` (and counted) for a look by hand. */
      long_retry_after: duration.default(120_000),
    })
    .prefault({}),
  /** Proxy Basic-auth users: name -> scrypt hash (make one with `portcullis hash-password`). */
  users: z.record(z.string().min(1), passwordHash).default({}),
  /** How password checks are bounded under load: concurrency, queue, credential cache (docs/identity.md). */
  auth: authSection.prefault({}),
  guard: guard.prefault({}),
  /** Who may reach which destinations on listeners without a signed `policy` ([[policy.rule]], docs/configuration.md). */
  policy: policySection.prefault({}),
  /** Reload when the file changes (also across the symlink swap of a Kubernetes ConfigMap), besides SIGHUP. */
  watch: bool.default(false),
  /** On SIGTERM/SIGINT, how long open connections may finish after accepting stops; 0 = cut at once. */
  shutdown_timeout: durationOrZero.default(30_000),
  /** Processes that accept on every listener (1 = one process, no primary); "auto" = one per CPU. */
  workers: workers.default(1),
  /** Workers accept on their own SO_REUSEPORT sockets instead of node:cluster's round-robin (docs/gateway.md); needs a restart to change. */
  reuse_port: bool.default(false),
  listener: z.array(listener).min(1, "expected at least one [[listener]]"),
  admin: admin.prefault({}),
  /** Rules of the http listeners: trusted proxies, profile, headers, routes, lockout. */
  http: httpSection.prefault({}),
  /** Bandwidth caps per identity and per IP, with overrides (docs/bandwidth.md); absent = no caps. */
  bandwidth: bandwidthSection.default({}),
}).superRefine((c, ctx) => {
  const seen = new Set<string>();
  c.listener.forEach((l, i) => {
    if (seen.has(l.name)) ctx.addIssue({ code: "custom", path: ["listener", i, "name"], message: `duplicate listener name ${shown(l.name)}` });
    seen.add(l.name);
  });
});

export type Config = z.output<typeof configSchema>;
export type ListenerConfig = Config["listener"][number];
export type GuardConfig = Config["guard"];
export type TlsConfig = NonNullable<ListenerConfig["tls"]>;
