/** The `version` command: prints the version. */
import { readFileSync } from "node:fs";

export const summary = "print the version";

export async function main(argv: string[]): Promise<number> {
  if (argv.includes("--help")) {
    console.log("usage: portcullis version\n\nPrints the version of Portcullis and of Node.js.");
    return 0;
  }
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };
  console.log(`portcullis ${pkg.version} (node ${process.version})`);
  return 0;
}
