/**
 * The guard answers at once on a synchronous store and with a promise on an
 * asynchronous one. Callers branch here, so the memory path stays as it
 * was: no promise, no extra turn of the event loop.
 */

/** `f` of a value now, or of a promise's value when it comes. */
export function thenMaybe<T, U>(v: T | Promise<T>, f: (t: T) => U): U | Promise<U> {
  return v instanceof Promise ? v.then(f) : f(v);
}

/** Runs `f` on the value now, or when the promise resolves (a rejection is dropped: `f` is a notification). */
export function whenReady<T>(v: T | Promise<T>, f: (t: T) => void): void {
  if (v instanceof Promise) v.then(f, () => {});
  else f(v);
}
