/**
 * Loads a configuration file (TOML, or YAML by extension), applies
 * environment overrides, and validates it against a schema the caller
 * gives (the gateway composes its schema from the features' sections in
 * src/gateway/config/schema.ts; this module knows no feature). Problems come
 * back as lines naming the key path; nothing here throws for bad input.
 */
import { readFileSync } from "node:fs";
import { dirname, extname, resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { didYouMean } from "./did-you-mean.js";
import { applyEnvOverrides } from "./env-overrides.js";
import { resolveFilePaths } from "./file-paths.js";
import { keysAt } from "./schema-walk.js";

export type LoadResult<T> = { ok: true; config: T } | { ok: false; problems: string[] };

/** Largest configuration file read; a config is never megabytes. */
const MAX_FILE_BYTES = 4 * 1024 * 1024;

function keyPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out === "" ? String(p) : `.${String(p)}`;
  }
  return out === "" ? "(top level)" : out;
}

/** `unknown key`, with the known key it most likely meant when `schema` shows one close to it. */
function unknownKey(schema: z.ZodType | undefined, path: readonly PropertyKey[], key: string): string {
  const meant = schema === undefined ? undefined : didYouMean(key, keysAt(schema, path));
  return meant === undefined ? "unknown key" : `unknown key (did you mean ${JSON.stringify(meant)}?)`;
}

/** One line per problem: `key.path: what is wrong`; `schema` (the one validated against) lets an unknown key get a did-you-mean. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], schema?: z.ZodType): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys") {
      for (const k of issue.keys) lines.push(`${keyPath([...issue.path, k])}: ${unknownKey(schema, issue.path, k)}`);
    } else if (issue.code === "invalid_type" && issue.input === undefined) {
      lines.push(`${keyPath(issue.path)}: required`);
    } else if (issue.code === "invalid_type") {
      lines.push(`${keyPath(issue.path)}: expected ${issue.expected === "object" ? "a table" : issue.expected}`);
    } else {
      lines.push(`${keyPath(issue.path)}: ${issue.message}`);
    }
  }
  return [...new Set(lines)];
}

/** Validates an already parsed document (after overrides) against `schema`. */
export function validateWith<S extends z.ZodType>(schema: S, doc: unknown): LoadResult<z.output<S>> {
  const r = schema.safeParse(doc);
  if (r.success) return { ok: true, config: r.data };
  return { ok: false, problems: formatIssues(r.error.issues, schema) };
}

/** Parses file text by format. */
export function parseDocument(text: string, format: "toml" | "yaml"): { ok: true; doc: unknown } | { ok: false; problem: string } {
  try {
    const doc = format === "toml" ? parseToml(text) : (parseYaml(text, { maxAliasCount: 100 }) as unknown);
    return { ok: true, doc: doc ?? {} };
  } catch (err) {
    // Parser messages carry line and column; keep the first line only (some append a code frame).
    let msg = err instanceof Error ? err.message.split("\n")[0]!.replace(/:$/, "") : String(err);
    const at = err as { line?: unknown; column?: unknown };
    if (typeof at.line === "number" && typeof at.column === "number" && !/ at line \d+/.test(msg)) msg += ` at line ${at.line}, column ${at.column}`;
    return { ok: false, problem: `(${format} syntax): ${msg}` };
  }
}

export function formatOf(file: string): "toml" | "yaml" {
  const ext = extname(file).toLowerCase();
  return ext === ".yaml" || ext === ".yml" ? "yaml" : "toml";
}

/**
 * Reads `file`, resolves the relative file paths it names from its folder,
 * applies overrides from `env` and validates the result against `schema`.
 */
export function loadWith<S extends z.ZodType>(schema: S, file: string, env: NodeJS.ProcessEnv = process.env): LoadResult<z.output<S>> {
  let text: string;
  try {
    const buf = readFileSync(file);
    if (buf.length > MAX_FILE_BYTES) return { ok: false, problems: [`${file}: larger than ${MAX_FILE_BYTES} bytes`] };
    text = buf.toString("utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "unreadable";
    return { ok: false, problems: [`${file}: cannot read (${code})`] };
  }
  const parsed = parseDocument(text, formatOf(file));
  if (!parsed.ok) return { ok: false, problems: [`${file} ${parsed.problem}`] };
  if (typeof parsed.doc !== "object" || Array.isArray(parsed.doc)) return { ok: false, problems: ["(top level): expected a table"] };
  const doc = parsed.doc as Record<string, unknown>;
  resolveFilePaths(schema, doc, dirname(resolve(file)));
  const { problems } = applyEnvOverrides(doc, env);
  const result = validateWith(schema, doc);
  if (problems.length === 0) return result;
  return { ok: false, problems: [...problems, ...(result.ok ? [] : result.problems)] };
}
