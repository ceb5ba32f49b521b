/**
 * Settings of the admin listener. The listener is off the data path: it
 * binds to loopback unless told otherwise, every data endpoint wants a
 * bearer token, and it limits its own request rate.
 */
import { parseHostPort } from "../config/leaves.js";
import { MIN_TOKEN_LENGTH } from "../gateway/config/admin-token.js";

export { MIN_TOKEN_LENGTH, adminTokenProblems } from "../gateway/config/admin-token.js";

export const ADMIN_RATE_STRATEGIES = ["path", "endpoint", "global"] as const;
/** What the admin limiter counts by: the exact path, the route (method + template), or all requests together. */
export type AdminRateStrategy = (typeof ADMIN_RATE_STRATEGIES)[number];

export interface AdminConfig {
  /** "host:port" or the parsed form the config schema produces (default 127.0.0.1:9090; port 0 picks a free one). */
  bind: string | { host: string; port: number };
  /** The bearer token itself (prefer token_env, so it stays out of files). */
  token?: string;
  /** Environment variable holding the token (default PORTCULLIS_ADMIN_TOKEN). */
  token_env?: string;
  rate_limit: {
    strategy: AdminRateStrategy;
    /** Requests per window, sustained. */
    limit: number;
    /** Window length in ms. */
    window: number;
    /** Requests that may arrive at once above the sustained rate. */
    burst: number;
  };
}

export const DEFAULT_ADMIN_CONFIG: AdminConfig = {
  bind: "127.0.0.1:9090",
  token_env: "PORTCULLIS_ADMIN_TOKEN",
  rate_limit: { strategy: "endpoint", limit: 20, window: 1000, burst: 40 },
};

/** The token from the config or its environment variable; throws when there is none, or it is too short. */
export function resolveAdminToken(c: AdminConfig, env: NodeJS.ProcessEnv = process.env): string {
  const name = c.token_env ?? "PORTCULLIS_ADMIN_TOKEN";
  const token = c.token ?? env[name];
  if (token === undefined || token.length === 0) throw new Error(`admin: no token (set admin.token or the ${name} environment variable)`);
  if (token.length < MIN_TOKEN_LENGTH) throw new Error(`admin: the token must be at least ${MIN_TOKEN_LENGTH} characters`);
  return token;
}

export function adminBind(c: AdminConfig): { host: string; port: number } {
  const hp = typeof c.bind === "string" ? parseHostPort(c.bind) : c.bind;
  if (hp === undefined) throw new Error(`admin: bind must be "host:port", got ${JSON.stringify(c.bind)}`);
  return hp;
}
