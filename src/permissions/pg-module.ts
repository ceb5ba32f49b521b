/**
 * The PostgreSQL client library, loaded when a permission policy is first
 * made rather than when this folder is imported: the gateway imports the
 * permission code whether or not a listener uses it, and pg costs several
 * MB of memory. `require` keeps the load synchronous (policies are built in
 * constructors) and caches the module, so there is no state here.
 */
import { createRequire } from "node:module";
import type pg from "pg";

const load = createRequire(import.meta.url);

export function pgModule(): typeof pg {
  return load("pg") as typeof pg;
}
