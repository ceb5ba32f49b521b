/**
 * File paths in a configuration file resolve from the file's folder, not
 * from wherever the process was started: `cert = "certs/server.pem"` next
 * to /etc/portcullis/portcullis.toml means /etc/portcullis/certs/server.pem
 * whether the gateway runs from systemd, a shell or a container. A schema
 * marks such a value with the `filePath` leaf; the loader rewrites those
 * values in the parsed document before environment overrides apply (a path
 * given in the environment is resolved from the working directory, like
 * any path on a command line).
 */
import { resolve } from "node:path";
import type { z } from "zod";
import { nonEmptyString } from "./leaves.js";
import { childrenOf, isLeaf, takesList } from "./schema-walk.js";

/** A file named by the configuration (a certificate, a key, a key list...): a non-empty string, absolute after loading. */
export const filePath = nonEmptyString.transform((s) => s);

type Node = z.core.$ZodType;

const isTable = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Deepest nesting followed: a configuration is a few levels deep, a hostile document may not be. */
const MAX_DEPTH = 32;

function walk(node: Node, value: unknown, base: string, depth: number): unknown {
  if (depth > MAX_DEPTH) return value;
  if (typeof value === "string") return value !== "" && isLeaf(node, filePath) ? resolve(base, value) : value;
  if (Array.isArray(value)) {
    if (!takesList(node)) return value;
    for (let i = 0; i < value.length; i++) for (const c of childrenOf(node, i)) value[i] = walk(c, value[i], base, depth + 1);
    return value;
  }
  if (isTable(value)) {
    for (const k of Object.keys(value)) for (const c of childrenOf(node, k)) value[k] = walk(c, value[k], base, depth + 1);
  }
  return value;
}

/** Rewrites, in place, every relative path `doc` gives where `schema` takes a `filePath`, as a path from `base`. */
export function resolveFilePaths(schema: z.ZodType, doc: Record<string, unknown>, base: string): void {
  walk(schema, doc, base, 0);
}
