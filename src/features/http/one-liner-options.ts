/**
 * What the one-line middlewares (`rateLimit`, `rateLimitPlugin`) share in
 * reading their options: the refusal of the options they do not support,
 * and the window both of the libraries they follow default to.
 */
import { InvalidArgumentError } from "../../core/errors.js";

/** The window of a limit given no window (one minute, as express-rate-limit and @fastify/rate-limit). */
export const DEFAULT_WINDOW_MS = 60_000;

/**
 * Throws for the first option of `unsupported` that `o` sets, naming what to
 * use instead: silently ignoring it would change behaviour. Where
 * `falseIsUnset`, an option set to false counts as not set.
 */
export function refuseUnsupported(o: object, unsupported: Readonly<Record<string, string>>, falseIsUnset: boolean): void {
  for (const k of Object.keys(unsupported)) {
    const v = (o as Record<string, unknown>)[k];
    if (v !== undefined && !(falseIsUnset && v === false)) throw new InvalidArgumentError(k, `is not supported; ${unsupported[k]}`);
  }
}
