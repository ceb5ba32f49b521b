/** The `bench` command: runs the benchmarks side by side with their peers in a source checkout. */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const summary = "run the benchmarks side by side with their peers (in a source checkout)";

export async function main(argv: string[]): Promise<number> {
  if (argv.includes("--help")) {
    console.log("usage: portcullis bench [suite-word ...]\n\nRuns bench/suites/*.ts (those whose file name contains a given word), the same as `npm run bench`.");
    return 0;
  }
  const entry = fileURLToPath(new URL("../../../bench/index.ts", import.meta.url));
  if (!existsSync(entry)) {
    console.error("portcullis bench: the benchmarks ship with the source checkout only");
    return 2;
  }
  const child = spawn(process.execPath, ["--import", "tsx", entry, ...argv], { stdio: "inherit" });
  return new Promise((resolve) => child.on("exit", (code) => resolve(code ?? 1)));
}
