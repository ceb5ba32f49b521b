#!/usr/bin/env node
// In a checkout, run the TypeScript source through tsx (never a stale build);
// in an installed package (no src/), run the compiled CLI from dist/.
import { existsSync } from "node:fs";

const source = new URL("../src/cli/main.ts", import.meta.url);
let cli;
if (existsSync(source)) {
  const { register } = await import("tsx/esm/api");
  register();
  ({ cli } = await import(source.href));
} else {
  ({ cli } = await import(new URL("../dist/cli/main.js", import.meta.url).href));
}
process.exitCode = await cli(process.argv.slice(2)).catch((err) => {
  console.error(`portcullis: ${err instanceof Error ? err.message : String(err)}`);
  return 1;
});
// The command is done: a handle left open somewhere must not keep the process alive past a stop.
setTimeout(() => process.exit(), 3000).unref();
