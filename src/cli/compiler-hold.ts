/**
 * Keeps V8's optimising compilers (Sparkplug, Maglev, TurboFan) off while
 * the gateway starts.
 *
 * Loading the gateway runs the module loader's path and URL helpers and the
 * configuration schema's builders thousands of times, which makes V8 tier
 * them up. That code is used once, but compiling it touches megabytes of the
 * compilers' own machine code in the node binary (and their threads' malloc
 * arenas), which then stay resident while the gateway idles: on Node 24,
 * whose V8 tiers up through Maglev, about 9 MiB of an idle gateway's RSS
 * (docs/memory.md). Holding the compilers until the listeners are up and
 * then turning them back on costs a slower start by a few milliseconds and
 * leaves tier-up for the code that traffic makes hot; V8 reads these flags
 * each time it considers optimising, so setting them at run time takes effect.
 */
import { setFlagsFromString } from "node:v8";

/** V8 flags held off during startup; each is on by default on 64-bit Linux in Node 20 and later. */
const COMPILERS = ["sparkplug", "maglev", "turbofan"] as const;

/** Whether the operator set `flag` (or its `no-` form) themselves: that choice is left alone. */
function setByOperator(flag: string): boolean {
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)];
  return given.some((a) => a.replace(/_/g, "-").replace(/^--(no-)?/, "").split("=")[0] === flag);
}

let release: (() => void) | undefined;

/**
 * Holds the compilers off now and returns the function that turns them back
 * on once startup is done (calling it again does nothing). Holding while
 * held returns the same function, so the CLI can hold before it loads the
 * command and the command release once its listeners are up.
 */
export function holdOptimizingCompilers(): () => void {
  if (release !== undefined) return release;
  const held = COMPILERS.filter((c) => !setByOperator(c));
  for (const c of held) setFlagsFromString(`--no-${c}`);
  const done = (): void => {
    if (release !== done) return;
    release = undefined;
    for (const c of held) setFlagsFromString(`--${c}`);
  };
  release = done;
  return done;
}
