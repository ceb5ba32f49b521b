/**
 * Settings of the admin listener. The listener is off the data path: it
 * binds to loopback unless told otherwise, every data endpoint wants a
 * bearer token, and it limits its own request rate.
 */
import { parseHostPort } from "../config/leaves.js";

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

/** Shortest token accepted: a guessable token on an API that can unban is worse than none. */
export const MIN_TOKEN_LENGTH = 16;

/** The token from the config or its environment variable; throws when there is none, or it is too short. */
export function resolveAdminToken(c: AdminConfig, env: NodeJS.ProcessEnv = process.env): string {
  const name = c.token_env ?? "PORTCULLIS_ADMIN_TOKEN";
  const token = c.token ?? env[name];
  if (token === undefined || token.length === 0) throw new Error(`admin: no token (set admin.token or the ${name} environment variable)`);
  if (token.length < MIN_TOKEN_LENGTH) throw new Error(`admin: the token must be at least ${MIN_TOKEN_LENGTH} characters`);
  return token;
}

/**
 * What keeps an enabled admin listener from starting, as configuration
 * problems naming the key path (never the token): checked by check-config,
 * and by run before any listener opens.
 */
export function adminTokenProblems(c: { enabled: boolean; token?: string; token_env: string }, env: NodeJS.ProcessEnv = process.env): string[] {
  if (!c.enabled) return [];
  if (c.token !== undefined) return c.token.length < MIN_TOKEN_LENGTH ? [`admin.token: expected at least ${MIN_TOKEN_LENGTH} characters (the token is not shown)`] : [];
  const t = env[c.token_env];
  if (t === undefined || t.length === 0) return [`admin.token_env: the environment variable ${c.token_env} is not set (an enabled admin listener needs a token)`];
  if (t.length < MIN_TOKEN_LENGTH) return [`admin.token_env: the token in ${c.token_env} is shorter than ${MIN_TOKEN_LENGTH} characters`];
  return [];
}

export function adminBind(c: AdminConfig): { host: string; port: number } {
  const hp = typeof c.bind === "string" ? parseHostPort(c.bind) : c.bind;
  if (hp === undefined) throw new Error(`admin: bind must be "host:port", got ${JSON.stringify(c.bind)}`);
  return hp;
}
