/**
 * Bounds how far V8 lets the old generation grow past its live objects
 * between full collections, for `portcullis run`.
 *
 * V8 sets the next full collection's trigger at the live size times a
 * growing factor it picks from how fast it collects against how fast the
 * program allocates: up to 4 on a host with plenty of memory. Under an
 * IP-churn flood every connection's objects outlive a scavenge (they wait
 * for a password check), so they are promoted and die in the old
 * generation; with a factor near 4 the old generation reached 130 MiB
 * around 35 MiB of live objects, and RSS 230-280 MiB (docs/memory.md).
 * A fixed factor of 1.3 keeps it within a third of the live set, for more
 * full collections that each find mostly garbage; measured, the flood's
 * connection rate did not change beyond the run-to-run noise.
 *
 * The operator's choice wins: a `--heap-growing-percent` node flag is left
 * alone, and PORTCULLIS_HEAP_GROWING_PERCENT sets the percent (0: V8's own
 * adaptive factor). V8 reads the flag each time it sets a trigger, so
 * setting it at run time takes effect from the next collection.
 */
import { setFlagsFromString } from "node:v8";

/** Old generation at most this percent above its live size between full collections. */
export const DEFAULT_HEAP_GROWING_PERCENT = 30;

export const HEAP_GROWING_ENV = "PORTCULLIS_HEAP_GROWING_PERCENT";

/**
 * The percent to apply: undefined when the operator passed the node flag
 * (left to it) or asked for V8's default (0); throws on a value that is not
 * a whole number from 0 to 1000.
 */
export function heapGrowingPercent(execArgv: readonly string[], env: Readonly<Record<string, string | undefined>>): number | undefined {
  const given = [...execArgv, ...(env.NODE_OPTIONS ?? "").split(/\s+/)];
  if (given.some((a) => a.replace(/_/g, "-").split("=")[0] === "--heap-growing-percent")) return undefined;
  const raw = env[HEAP_GROWING_ENV];
  if (raw === undefined || raw.trim() === "") return DEFAULT_HEAP_GROWING_PERCENT;
  const pct = Number(raw);
  if (!Number.isInteger(pct) || pct < 0 || pct > 1000) throw new Error(`${HEAP_GROWING_ENV} must be a whole number from 0 to 1000 (0: V8's default), got "${raw}"`);
  return pct === 0 ? undefined : pct;
}

/** Applies the percent chosen by heapGrowingPercent for this process; returns it (undefined: V8's default kept). */
export function limitHeapGrowth(execArgv: readonly string[] = process.execArgv, env: Readonly<Record<string, string | undefined>> = process.env): number | undefined {
  const pct = heapGrowingPercent(execArgv, env);
  if (pct !== undefined) setFlagsFromString(`--heap-growing-percent=${pct}`);
  return pct;
}
