/**
 * The PostgreSQL client library, loaded when a permission policy is first
 * made rather than when this folder is imported: the gateway imports the
 * permission code whether or not a listener uses it, and pg costs several
 * MB of memory. `require` keeps the load synchronous (policies are built in
 * constructors) and caches the module, so there is no state here.
 */
import { createRequire } from "node:module";
import type pg from "pg";
import { explainMissingPeer } from "../../core/optional-peer.js";

const load = createRequire(import.meta.url);

/** The pg module; a MissingPeerError naming `feature` when pg is not installed (it is an optional peer dependency). */
export function pgModule(feature = "a PostgreSQL permission policy"): typeof pg {
  try {
    return load("pg") as typeof pg;
  } catch (err) {
    return explainMissingPeer(err, "pg", feature);
  }
}

/** Whether `e` is an error PostgreSQL answered with (pg's DatabaseError); false when pg is not installed. */
export function isDatabaseError(e: unknown): boolean {
  let mod: typeof pg;
  try {
    mod = load("pg") as typeof pg;
  } catch {
    return false;
  }
  return e instanceof mod.DatabaseError;
}
