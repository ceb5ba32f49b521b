/**
 * The gateway's configuration file: the generic loader (src/config/load.ts)
 * bound to the schema composed in ./schema.ts.
 */
import { type LoadResult as Loaded, loadWith, validateWith } from "../../config/load.js";
import { type Config, configSchema } from "./schema.js";

export type LoadResult = Loaded<Config>;

/** Validates an already parsed document (after overrides). */
export function validateConfig(doc: unknown): LoadResult {
  return validateWith(configSchema, doc);
}

/** Reads, overrides from `env` and validates `file`. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  return loadWith(configSchema, file, env);
}
