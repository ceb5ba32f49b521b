/**
 * The `[store]` section: where the gateway counts (the guard's caps, rates,
 * failed logins and bans). "memory" keeps everything in this process;
 * "redis" shares it with every gateway using the same Redis and prefix.
 *
 * A Redis URL may carry a password, so no message here ever shows the URL,
 * and the effective configuration prints it with the password redacted.
 */
import { z } from "zod";
import { bool, duration, nonEmptyString, oneOf, positiveInt, shown } from "../../config/leaves.js";

export const STORE_KINDS = ["memory", "redis"] as const;
export const FAILURE_MODES = ["insurance", "open", "closed"] as const;

/** A redis:// or rediss:// URL; refused without echoing it (it may hold a password). */
const redisUrl = z.unknown().transform((v, ctx): string => {
  let ok = false;
  if (typeof v === "string") {
    try {
      const u = new URL(v);
      ok = (u.protocol === "redis:" || u.protocol === "rediss:") && u.hostname.length > 0;
    } catch {
      ok = false;
    }
  }
  if (ok) return v as string;
  ctx.addIssue({ code: "custom", message: 'expected a URL such as "redis://host:6379/0" or "rediss://user:pass@host:6380" (the value is not shown: it may hold a password)' });
  return z.NEVER;
});

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const envName = z.unknown().transform((v, ctx): string => {
  if (typeof v === "string" && ENV_NAME.test(v)) return v;
  ctx.addIssue({ code: "custom", message: `expected an environment variable name such as "PORTCULLIS_REDIS_URL", got ${shown(v)}` });
  return z.NEVER;
});

/** Keys are `<prefix><limit name>...`; braces are Redis Cluster hash tags, reserved for the store. */
const keyPrefix = z.unknown().transform((v, ctx): string => {
  if (typeof v === "string" && v.length <= 64 && !/[{}\s]/.test(v)) return v;
  ctx.addIssue({ code: "custom", message: `expected a key prefix of at most 64 characters without braces or spaces, such as "pc:", got ${shown(v)}` });
  return z.NEVER;
});

export const storeSection = z
  .strictObject({
    kind: oneOf(STORE_KINDS).default("memory"),
    /** Most keys the memory store (and a shared store's local insurance) tracks. */
    max_keys: positiveInt.default(1_000_000),
    /** Where Redis is: redis://[user:pass@]host:port[/db], or rediss:// for TLS. */
    url: redisUrl.optional(),
    /** The environment variable holding the URL instead (keeps the password out of the file). */
    url_env: envName.optional(),
    /** Prepended to every key, so several deployments can share one Redis. */
    prefix: keyPrefix.default("portcullis:"),
    /** The URL is one seed node of a Redis Cluster. */
    cluster: bool.default(false),
    /** What decides while Redis is unavailable. */
    on_failure: oneOf(FAILURE_MODES).default("insurance"),
    /** Files for rediss:// with a private CA or a client certificate. */
    tls: z
      .strictObject({
        ca: nonEmptyString.optional(),
        cert: nonEmptyString.optional(),
        key: nonEmptyString.optional(),
      })
      .optional(),
    /** Lifetime of a connection's concurrency lease in Redis, renewed while it lives: a crashed gateway's slots free within it. */
    lease_ttl: duration.default(30_000),
    /** Deadline of one Redis call; past it the call counts as a failure. */
    timeout: duration.default(250),
    /** Gateways sharing the store: the insurance limits are the real ones divided by it. */
    expected_instances: positiveInt.default(2),
  })
  .superRefine((s, ctx) => {
    const redisOnly = ["url", "url_env", "tls"] as const;
    if (s.kind === "memory") {
      for (const k of redisOnly) if (s[k] !== undefined) ctx.addIssue({ code: "custom", path: [k], message: 'only with kind = "redis"' });
      return;
    }
    if (s.url === undefined && s.url_env === undefined) ctx.addIssue({ code: "custom", path: ["url"], message: 'kind = "redis" needs url or url_env' });
    if (s.url !== undefined && s.url_env !== undefined) ctx.addIssue({ code: "custom", path: ["url_env"], message: "give url or url_env, not both" });
    if (s.tls !== undefined && (s.tls.cert === undefined) !== (s.tls.key === undefined)) {
      ctx.addIssue({ code: "custom", path: ["tls", s.tls.cert === undefined ? "cert" : "key"], message: "a client certificate needs both cert and key" });
    }
    if (s.tls !== undefined && s.url !== undefined && !s.url.startsWith("rediss:")) {
      ctx.addIssue({ code: "custom", path: ["tls"], message: "TLS files need a rediss:// url" });
    }
  });

export type StoreConfig = z.output<typeof storeSection>;

/** A Redis URL with its password replaced, for logs, errors and the effective configuration. */
export function redactUrl(url: string, mark = "<redacted>"): string {
  return url.replace(/^(rediss?:\/\/)([^@/]*)@/, (_m, scheme: string, auth: string) => {
    const colon = auth.indexOf(":");
    return `${scheme}${colon < 0 ? mark : `${auth.slice(0, colon)}:${mark}`}@`;
  });
}
