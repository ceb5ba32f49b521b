/**
 * The admin listener's token rules, where the configuration is validated
 * (the gateway's config layer), so check-config and run refuse a bad token
 * before anything opens; the admin listener itself uses the same rules.
 */

/** Shortest token accepted: a guessable token on an API that can unban is worse than none. */
export const MIN_TOKEN_LENGTH = 16;

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

