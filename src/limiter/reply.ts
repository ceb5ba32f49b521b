/** The seam between the sync and async surfaces: a limiter's last step runs on the store's answer. */
import type { Reply } from "../stores/store.js";

/**
 * The one seam between the sync and the async surface: a limiter's rule is
 * written once, and its last step runs on the store's answer at once (sync
 * store) or when it arrives (async store).
 */
export function then<S extends boolean, T, U>(sync: S, r: Reply<S, T>, f: (t: T) => U): Reply<S, U> {
  if (sync) return f(r as T) as Reply<S, U>;
  return (r as Promise<T>).then(f) as Reply<S, U>;
}

/** `v` as a store of kind `S` would answer it. */
export function value<S extends boolean, T>(sync: S, v: T): Reply<S, T> {
  return (sync ? v : Promise.resolve(v)) as Reply<S, T>;
}

/** Bad input: thrown on the sync surface, a rejected promise on the async one. */
export function refuse<S extends boolean>(sync: S, err: unknown): Reply<S, never> {
  if (sync) throw err;
  return Promise.reject(err) as Reply<S, never>;
}
