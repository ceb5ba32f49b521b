/**
 * Configuration of destination permissions: the `[[policy.rule]]` tables
 * (who may reach which hosts, ports and networks) and, on a `connect`
 * listener, signed PostgreSQL permissions instead:
 * `policy = { source = "postgres", url, public_key, schema, cache_ttl }` and
 * `revoke_closes_tunnels`. Without `policy` the listener keeps using the
 * rules in [[policy.rule]].
 */
import { z } from "zod";
import { parseDuration } from "../../config/duration.js";
import { filePath } from "../../config/file-paths.js";
import { bool, nonEmptyString, oneOf, shown } from "../../config/leaves.js";
import { cidr } from "../../net/cidr-leaf.js";
import { isCanonicalHostPattern } from "./host-pattern.js";
import { quotedSchema } from "./schema-name.js";

const port = z.unknown().transform((v, ctx): number | [number, number] => {
  if (typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 65535) return v;
  if (typeof v === "string") {
    const m = /^(\d{1,5})-(\d{1,5})$/.exec(v);
    if (m && Number(m[1]) >= 1 && Number(m[2]) <= 65535 && Number(m[1]) <= Number(m[2])) return [Number(m[1]), Number(m[2])];
  }
  ctx.addIssue({ code: "custom", message: `expected a port (1-65535) or a range "8000-8080", got ${shown(v)}` });
  return z.NEVER;
});

const hostPattern = z.unknown().transform((v, ctx): string => {
  if (typeof v === "string" && isCanonicalHostPattern(v)) return v;
  ctx.addIssue({ code: "custom", message: `expected a host pattern ("api.example.com", "*.example.com", "*" or an IP) in lower case, got ${shown(v)}` });
  return z.NEVER;
});

const rule = z.strictObject({
  identities: z.array(nonEmptyString).min(1, "expected at least one identity (\"*\" for any)"),
  hosts: z.array(hostPattern).default([]),
  ports: z.array(port).default([]),
  cidrs: z.array(cidr).default([]),
});

/** The `[policy]` section: the rules every listener without a signed `policy` applies. */
export const policySection = z.strictObject({ rule: z.array(rule).default([]) });

export type PolicySection = z.output<typeof policySection>;

function isSchemaName(v: string): boolean {
  try {
    quotedSchema(v);
    return true;
  } catch {
    return false;
  }
}

/** A cache lifetime; "0s" turns the cache off. */
const ttl = z.unknown().transform((v, ctx): number => {
  const ms = typeof v === "string" ? parseDuration(v) : undefined;
  if (ms !== undefined && ms >= 0) return ms;
  ctx.addIssue({ code: "custom", message: `expected a duration such as "5s" ("0s" turns the cache off), got ${shown(v)}` });
  return z.NEVER;
});

const schemaName = z.unknown().transform((v, ctx): string => {
  if (typeof v === "string" && isSchemaName(v)) return v;
  ctx.addIssue({ code: "custom", message: `expected a PostgreSQL schema name such as "public", got ${shown(v)}` });
  return z.NEVER;
});

export const listenerPolicy = z
  .strictObject({
    source: oneOf(["postgres"] as const),
    /** postgres://user@host:port/db; prefer url_env for a URL with a password. */
    url: nonEmptyString.optional(),
    /** Name of an environment variable holding the URL (default PORTCULLIS_POLICY_URL when url is not given). */
    url_env: nonEmptyString.default("PORTCULLIS_POLICY_URL"),
    /** PEM public key file(s) trusted to sign rows (relative paths from the configuration file's folder). */
    public_key: z.union([filePath, z.array(filePath).min(1)]).transform((v) => (Array.isArray(v) ? v : [v])),
    schema: schemaName.default("public"),
    cache_ttl: ttl.default(5000),
    /**
     * Special addresses (private, loopback, link-local, ...) a signed grant may
     * reach: a grant alone never opens a path into the gateway's own network.
     */
    allow_special: z.array(cidr).default([]),
  })
  .optional();

export type ListenerPolicyConfig = NonNullable<z.output<typeof listenerPolicy>>;

/** Listener fields, spread into the listener schema. */
export const permissionListenerFields = {
  policy: listenerPolicy,
  /** With a postgres policy: a revoked or changed row also closes the tunnels it admitted. */
  revoke_closes_tunnels: bool.default(false),
};

/** What the permission adapter reads of a `[[listener]]` (the gateway passes the whole validated listener). */
export interface PermissionListenerConfig {
  name: string;
  policy?: ListenerPolicyConfig | undefined;
  revoke_closes_tunnels: boolean;
}

export function refinePermissionListener(l: { kind: string; policy?: ListenerPolicyConfig }, ctx: z.RefinementCtx): void {
  if (l.policy !== undefined && l.kind !== "connect") ctx.addIssue({ code: "custom", path: ["policy"], message: 'only for kind "connect"' });
}
