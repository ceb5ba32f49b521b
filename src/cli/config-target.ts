/**
 * What the operator commands (`bans`, `permit`) read from a gateway's
 * configuration file with `-c FILE`: the admin listener's URL and token, or
 * a connect listener's permission table. Each problem is one line naming
 * the file and the key path to fix.
 */
import { adminTokenProblems } from "../gateway/config/admin-token.js";
import { loadConfigFile } from "../gateway/config/load.js";
import type { Config } from "../gateway/config/schema.js";
import type { ListenerPolicyConfig } from "../features/permissions/config-schema.js";

export class ConfigTargetError extends Error {}

function load(file: string, env: NodeJS.ProcessEnv): Config {
  const r = loadConfigFile(file, env);
  if (!r.ok) {
    const more = r.problems.length > 1 ? ` (and ${r.problems.length - 1} more; see portcullis check-config -c ${file})` : "";
    throw new ConfigTargetError(`${file}: ${r.problems[0]}${more}`);
  }
  return r.config;
}

/** How a client reaches a listen address: a wildcard host is reached on loopback. */
function reachable(host: string, port: number): string {
  const h = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return h.includes(":") ? `[${h}]:${port}` : `${h}:${port}`;
}

/** The admin listener of the gateway `file` configures: its URL and token (from admin.token or the admin.token_env variable). */
export function adminTarget(file: string, env: NodeJS.ProcessEnv): { url: string; token: string } {
  const c = load(file, env);
  const a = c.admin;
  if (!a.enabled) throw new ConfigTargetError(`${file}: admin.enabled: the admin listener is off (set [admin] enabled = true and a token, then restart the gateway)`);
  if (a.bind.port === 0) throw new ConfigTargetError(`${file}: admin.bind: port 0 (any free port) cannot be found from the file; pass --url`);
  const problems = adminTokenProblems(a, env);
  if (problems.length > 0) throw new ConfigTargetError(`${file}: ${problems[0]}`);
  return { url: `http://${reachable(a.bind.host, a.bind.port)}`, token: a.token ?? env[a.token_env]! };
}

export interface PolicyTarget {
  /** Listener whose policy was read. */
  listener: string;
  url: string;
  schema: string;
  publicKeys: string[];
}

/** The signed-permission table of a connect listener in `file` (the only one with a postgres policy, or the one named). */
export function policyTarget(file: string, env: NodeJS.ProcessEnv, listener?: string): PolicyTarget {
  const c = load(file, env);
  const withPolicy = c.listener.map((l, i) => ({ l, i })).filter((x): x is { l: typeof x.l & { policy: ListenerPolicyConfig }; i: number } => x.l.policy !== undefined);
  let pick: (typeof withPolicy)[number] | undefined;
  if (listener !== undefined) {
    pick = withPolicy.find((x) => x.l.name === listener);
    if (!pick) throw new ConfigTargetError(`${file}: no connect listener named ${JSON.stringify(listener)} with policy = { source = "postgres", ... }`);
  } else if (withPolicy.length === 1) pick = withPolicy[0];
  else if (withPolicy.length === 0) throw new ConfigTargetError(`${file}: no listener has policy = { source = "postgres", ... } (signed permissions are off)`);
  else throw new ConfigTargetError(`${file}: several listeners have a postgres policy (${withPolicy.map((x) => x.l.name).join(", ")}); choose one with --listener NAME`);
  const p = pick!.l.policy;
  const url = p.url ?? env[p.url_env];
  if (url === undefined || url === "") throw new ConfigTargetError(`${file}: listener[${pick!.i}].policy.url: not set, nor the environment variable ${p.url_env}`);
  return { listener: pick!.l.name, url, schema: p.schema, publicKeys: p.public_key };
}
