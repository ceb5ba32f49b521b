// Module resolution hooks for record-loads.mjs (they run on Node's loader thread).
import { writeSync } from "node:fs";

export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  writeSync(2, `loaded ${resolved.url}\n`);
  return resolved;
}
