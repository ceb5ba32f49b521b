/**
 * Bounded waits for tests on real sockets and processes: poll a condition
 * until it holds or a deadline passes, and a plain timed pause. A wait that
 * times out names what it was waiting for, so a failure says which step of
 * a test never happened.
 */

export interface WaitOptions {
  /** What is awaited, in the error: "timed out after N ms waiting for <message>". */
  message: string;
  /** The bound (default 5 s). */
  timeoutMs?: number;
  /** Pause between two checks (default 10 ms). */
  intervalMs?: number;
}

type Truthy<T> = Exclude<T, false | undefined | null | 0 | "">;

/** Resolves after `ms` milliseconds of wall time. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Checks `predicate` (sync or async) until it returns a truthy value, and
 * resolves with that value. Fails once `timeoutMs` has passed, also when an
 * async check is still pending then: a check that hangs cannot hold the test
 * past its bound. No timer outlives the wait (a poll left running after a
 * timeout would keep the test file's process alive).
 */
export async function waitUntil<T>(predicate: () => T | Promise<T>, o: WaitOptions): Promise<Truthy<T>> {
  const timeoutMs = o.timeoutMs ?? 5_000;
  const intervalMs = o.intervalMs ?? 10;
  const deadline = performance.now() + timeoutMs;
  const fail = (): Error => new Error(`timed out after ${timeoutMs} ms waiting for ${o.message}`);
  for (;;) {
    const v = await beforeDeadline(predicate(), deadline, fail);
    if (v) return v as Truthy<T>;
    const left = deadline - performance.now();
    if (left <= 0) throw fail();
    await sleep(Math.min(intervalMs, left));
  }
}

/** `v`, or a rejection once `deadline` passes while it is still pending. */
function beforeDeadline<T>(v: T | Promise<T>, deadline: number, fail: () => Error): T | Promise<T> {
  if (!(v instanceof Promise)) return v;
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(fail()), Math.max(0, deadline - performance.now()));
    v.then(
      (x) => {
        clearTimeout(t);
        resolve(x);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e as Error);
      },
    );
  });
}
