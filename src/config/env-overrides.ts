/**
 * Environment overrides by hierarchy: `PORTCULLIS__GUARD__MAX_CONNECTIONS_PER_IP=50`
 * sets guard.max_connections_per_ip; a numeric level indexes an array
 * (`PORTCULLIS__LISTENER__0__BIND=0.0.0.0:8080`). Values that read as
 * integers, decimals or booleans become those; anything else stays a string
 * and the schema judges it like a value from the file.
 */
export const ENV_PREFIX = "PORTCULLIS__";

/** Most overrides applied; an environment is not a place for thousands of settings. */
const MAX_OVERRIDES = 256;

export interface EnvOverride {
  variable: string;
  path: (string | number)[];
}

function scalar(raw: string): unknown {
  if (raw === "true") return true;
  if (raw === "false") return false;
  if (/^-?\d+(?:_\d+)*$/.test(raw)) {
    const n = Number(raw.replaceAll("_", ""));
    if (Number.isSafeInteger(n)) return n;
  }
  if (/^-?\d+\.\d+$/.test(raw)) return Number(raw);
  return raw;
}

/** Applies overrides to a parsed document in place; returns what was applied (for logs) and problems. */
export function applyEnvOverrides(doc: Record<string, unknown>, env: NodeJS.ProcessEnv): { applied: EnvOverride[]; problems: string[] } {
  const applied: EnvOverride[] = [];
  const problems: string[] = [];
  for (const [variable, raw] of Object.entries(env)) {
    if (!variable.startsWith(ENV_PREFIX) || raw === undefined) continue;
    if (applied.length >= MAX_OVERRIDES) {
      problems.push(`${variable}: more than ${MAX_OVERRIDES} PORTCULLIS__ overrides`);
      break;
    }
    const parts = variable.slice(ENV_PREFIX.length).split("__");
    if (parts.some((p) => p.length === 0)) {
      problems.push(`${variable}: empty level in the variable name`);
      continue;
    }
    const path = parts.map((p) => (/^\d{1,4}$/.test(p) ? Number(p) : p.toLowerCase()));
    let node: unknown = doc;
    let ok = true;
    for (let i = 0; i < path.length - 1; i++) {
      const key = path[i]!;
      const container = node as Record<string | number, unknown>;
      let next = container[key];
      if (next === undefined) {
        next = typeof path[i + 1] === "number" ? [] : {};
        container[key] = next;
      }
      if (typeof next !== "object" || next === null) {
        problems.push(`${path.slice(0, i + 1).join(".")}: cannot set ${variable}, the value there is not a table`);
        ok = false;
        break;
      }
      node = next;
    }
    if (!ok) continue;
    (node as Record<string | number, unknown>)[path[path.length - 1]!] = scalar(raw);
    applied.push({ variable, path });
  }
  return { applied, problems };
}
