#!/usr/bin/env node
// Runs the compiled CLI when built (npm run build), else the TypeScript source through tsx.
import { existsSync } from "node:fs";

const built = new URL("../dist/cli/main.js", import.meta.url);
if (existsSync(built)) {
  const { cli } = await import(built.href);
  process.exitCode = await cli(process.argv.slice(2));
} else {
  const { register } = await import("tsx/esm/api");
  register();
  const { cli } = await import(new URL("../src/cli/main.ts", import.meta.url).href);
  process.exitCode = await cli(process.argv.slice(2)).catch((err) => {
    console.error(`portcullis: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  });
}
