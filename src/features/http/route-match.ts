/**
 * Route patterns. "/token" matches that path (with or without a trailing
 * slash); "/internal/*" matches "/internal" and everything below it;
 * "/users/:id" matches one segment in place of ":id"; "*" matches every
 * path. Matching is case-sensitive, like the routers of Express and Fastify.
 */
import { InvalidArgumentError } from "../../core/errors.js";

export interface PathMatcher {
  readonly pattern: string;
  test(path: string): boolean;
}

export function compilePattern(pattern: string, param = "match"): PathMatcher {
  if (typeof pattern !== "string" || pattern.length === 0) throw new InvalidArgumentError(param, "must be a non-empty string");
  if (pattern === "*" || pattern === "/*") return { pattern, test: () => true };
  if (pattern.charCodeAt(0) !== 47) throw new InvalidArgumentError(param, `must start with "/", got ${JSON.stringify(pattern)}`);
  const prefix = pattern.endsWith("/*");
  const body = prefix ? pattern.slice(0, -2) : pattern.replace(/\/+$/, "");
  if (body.includes("*")) throw new InvalidArgumentError(param, `"*" is only allowed as the last segment, got ${JSON.stringify(pattern)}`);
  if (!body.includes(":")) {
    // Literal patterns compare strings: no regular expression on the hot path.
    if (prefix) {
      const withSlash = `${body}/`;
      return { pattern, test: (p) => p === body || p.startsWith(withSlash) };
    }
    const literal = body === "" ? "/" : body;
    const withSlash = `${literal}/`;
    return { pattern, test: (p) => p === literal || p === withSlash };
  }
  const source = body
    .split("/")
    .map((seg) => (seg.startsWith(":") ? "[^/]+" : seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
    .join("/");
  const re = new RegExp(prefix ? `^${source}(?:/.*)?$` : `^${source}/?$`);
  return { pattern, test: (p) => re.test(p) };
}

/** Upper-cased method set, or undefined for "any method". */
export function compileMethods(methods: string[] | undefined, param = "methods"): ReadonlySet<string> | undefined {
  if (methods === undefined) return undefined;
  if (!Array.isArray(methods) || methods.length === 0) throw new InvalidArgumentError(param, "must be a non-empty list of methods");
  const set = new Set<string>();
  for (const m of methods) {
    if (typeof m !== "string" || !/^[A-Za-z]+$/.test(m)) throw new InvalidArgumentError(param, `not a method: ${JSON.stringify(m)}`);
    set.add(m.toUpperCase());
  }
  // A HEAD request is a GET without a body: a GET rule must not be dodged with HEAD.
  if (set.has("GET")) set.add("HEAD");
  return set;
}
