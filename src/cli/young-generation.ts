/**
 * Keeps V8's young generation at its initial size while the gateway starts.
 *
 * Loading the gateway's modules allocates many objects that all survive, and
 * V8 answers a high survival rate by doubling the young generation up to its
 * maximum (16 MB of semi-spaces on 64-bit). Those pages stay committed (and
 * count in RSS) for as long as the process idles, which is most of an idle
 * gateway's memory beyond the code it loaded (docs/memory.md). Holding the
 * growth factor at 1 during startup, and restoring V8's default once the
 * listeners are up, keeps an idle gateway small and still lets the young
 * generation grow when traffic needs it. V8 reads the factor each time it
 * considers growing, so setting it at run time takes effect.
 */
import { setFlagsFromString } from "node:v8";

/** V8's default (src/flags/flag-definitions.h: semi_space_growth_factor). */
const DEFAULT_GROWTH_FACTOR = 2;

/** Holds growth now; call the returned function once startup is done (calling it again does nothing). */
export function holdYoungGeneration(): () => void {
  setFlagsFromString("--semi-space-growth-factor=1");
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    setFlagsFromString(`--semi-space-growth-factor=${DEFAULT_GROWTH_FACTOR}`);
  };
}
