/**
 * Gives a flood's heap back to the system once its tables have drained.
 *
 * Under a flood V8 grows the young generation to its maximum (two 16 MiB
 * semi-spaces on 64-bit) and the old generation to hold the failed-login
 * tables and the connections. Once the tables are swept nothing is allocated
 * any more, and an idle process runs no collection, so V8 keeps all of it
 * committed: its memory reducer gives it back only if it happens to be
 * armed, after a delay that varies from run to run (docs/memory.md).
 *
 * Two full collections do it deterministically. The first frees the swept
 * records and releases the old generation's empty pages. V8 shrinks the young
 * generation only at a collection that finds the allocation rate low (under
 * 1 KB/ms over the last 5 s), and the first collection still sees the
 * flood's allocations in its window; the second, RECLAIM_GAP_MS later, sees
 * only the quiet since the first, and shrinks the young generation to its
 * initial size. Together they bring RSS back near idle within seconds of the
 * sweep, for two pauses of a few milliseconds per drained flood.
 *
 * `gc` is not exposed by default; the flag makes V8 install it in contexts
 * created afterwards, so one small context is made for it, on first use.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

type Gc = () => void;
let gc: Gc | undefined;

/** Between the two collections: longer than V8's 5 s window of allocation throughput. */
export const RECLAIM_GAP_MS = 6000;

function collect(): void {
  try {
    if (gc === undefined) {
      setFlagsFromString("--expose-gc");
      gc = runInNewContext("gc") as Gc;
    }
    gc();
  } catch {
    // Not worth failing over: V8 gives the memory back later by itself.
  }
}

/** Runs one full collection now and one RECLAIM_GAP_MS later (real time: V8 measures its rate in real time). */
export function reclaimHeap(): void {
  collect();
  setTimeout(() => {
    collect();
  }, RECLAIM_GAP_MS).unref();
}
