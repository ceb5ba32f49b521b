/**
 * Keeps V8's young generation small: at its initial size while the gateway
 * starts, and at most YOUNG_CAP_BYTES afterwards.
 *
 * Loading the gateway's modules allocates many objects that all survive, and
 * V8 answers a high survival rate by doubling the young generation up to its
 * maximum (16 MB semi-spaces on 64-bit, 32 MB of new space). Those pages stay
 * committed (and count in RSS) for as long as the process idles, which is most
 * of an idle gateway's memory beyond the code it loaded (docs/memory.md).
 * Holding the growth factor at 1 during startup keeps an idle gateway small.
 *
 * Under an IP-churn flood the same doubling takes the new space to its 32 MB
 * maximum, a fifth of the flood's peak RSS. `--max-semi-space-size` would
 * bound it, but V8 reads that flag only when the heap is made, so it cannot
 * be set from inside `portcullis run`. The growth factor, though, is read
 * each time V8 considers growing: a watcher, run after each scavenge, lets the new space grow
 * (factor 2) while it is under the cap and stops it (factor 1) once it
 * reaches it. Measured on the 100,000-address flood: peak RSS 163 -> 139 MiB
 * with the same connection rate (docs/memory.md). An operator's own
 * `--max-semi-space-size` (node flag or NODE_OPTIONS) turns the watcher off.
 */
import { PerformanceObserver, constants } from "node:perf_hooks";
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";

/** V8's default (src/flags/flag-definitions.h: semi_space_growth_factor). */
const DEFAULT_GROWTH_FACTOR = 2;

/** New space (both semi-spaces) the watcher lets V8 grow to: 4 MB semi-spaces. */
export const YOUNG_CAP_BYTES = 8 * 2 ** 20;

function newSpaceBytes(): number {
  for (const s of getHeapSpaceStatistics()) if (s.space_name === "new_space") return s.space_size;
  return 0;
}

/** True when the operator bounded the young generation with node's own flag. */
export function operatorSetsYoungGeneration(execArgv: readonly string[], env: Readonly<Record<string, string | undefined>>): boolean {
  const given = [...execArgv, ...(env.NODE_OPTIONS ?? "").split(/\s+/)];
  return given.some((a) => a.replace(/_/g, "-").split("=")[0] === "--max-semi-space-size");
}

/**
 * Holds growth now; call the returned function once startup is done. From
 * then on the new space may grow to `capBytes` and no further (unless the
 * operator set `--max-semi-space-size`). Calling it again does nothing.
 */
export function holdYoungGeneration(
  capBytes: number = YOUNG_CAP_BYTES,
  execArgv: readonly string[] = process.execArgv,
  env: Readonly<Record<string, string | undefined>> = process.env,
): () => void {
  setFlagsFromString("--semi-space-growth-factor=1");
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    if (operatorSetsYoungGeneration(execArgv, env)) {
      setFlagsFromString(`--semi-space-growth-factor=${DEFAULT_GROWTH_FACTOR}`);
      return;
    }
    let factor = 1;
    const watch = (): void => {
      const want = newSpaceBytes() >= capBytes ? 1 : DEFAULT_GROWTH_FACTOR;
      if (want === factor) return;
      factor = want;
      setFlagsFromString(`--semi-space-growth-factor=${factor}`);
    };
    watch();
    // After each scavenge (the only time the new space grows): nothing runs while the gateway idles.
    const observer = new PerformanceObserver((list) => {
      if (list.getEntries().some((e) => (e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR)) watch();
    });
    observer.observe({ entryTypes: ["gc"] });
  };
}
