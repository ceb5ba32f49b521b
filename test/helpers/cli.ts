/**
 * The CLI the tests drive: bin/portcullis.js, the command users run, which
 * runs the built dist/. The test runner (scripts/test.mjs) builds before any
 * test; a test file run on its own with a dist/ older than src/ fails here,
 * at import, rather than test yesterday's code. runCli runs one command of it
 * to its end and hands back its exit code and output.
 */
import { execFile } from "node:child_process";
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

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `portcullis ARGS` to its end (killed after 30 s) with exactly `env`
 * as its environment, in `cwd` (default the repository root).
 */
export function runCli(args: string[], o: { env: NodeJS.ProcessEnv; cwd?: string }): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: o.cwd ?? root, env: o.env, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}
