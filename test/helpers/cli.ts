/**
 * The CLI the tests drive: bin/portcullis.js, the command users run, which
 * runs the built dist/. The test runner (scripts/test.mjs) builds before any
 * test; a test file run on its own with a dist/ older than src/ fails here,
 * at import, rather than test yesterday's code.
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const root = new URL("../..", import.meta.url).pathname;

export const CLI = join(root, "bin/portcullis.js");

/** Latest change under `dir`: a file's content, or a directory's entries (a file added, removed or renamed). */
function newestChange(dir: string): number {
  let newest = statSync(dir).mtimeMs;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestChange(p) : statSync(p).mtimeMs);
  }
  return newest;
}

function builtAt(): number {
  try {
    return statSync(join(root, "dist/.built")).mtimeMs;
  } catch {
    return -1;
  }
}

const built = builtAt();
if (built < newestChange(join(root, "src"))) {
  throw new Error(`dist/ is ${built < 0 ? "missing" : "older than src/"}: run the tests with \`npm test\` (it builds first) or run \`npm run build\``);
}
