/**
 * The CLI as an installed package runs it: the sources compiled to dist/
 * beside bin/, in a temporary directory (bin/portcullis.js runs dist/ when
 * there is no src/ next to it). Each file is transpiled on its own
 * (`ts.transpileModule`, no type check: `npm run typecheck` does that), which
 * takes a second or two instead of a full build. For tests that measure the
 * process itself (memory), where the TypeScript loader of a checkout would
 * be measured too.
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import ts from "typescript";

const ROOT = new URL("../..", import.meta.url).pathname;

export interface InstalledCli {
  /** bin/portcullis.js of the copy. */
  bin: string;
  dir: string;
  remove(): void;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [p] : [];
  });
}

export function installedCli(): InstalledCli {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-installed-"));
  try {
    const options: ts.CompilerOptions = { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, esModuleInterop: true };
    for (const file of sources(join(ROOT, "src"))) {
      const out = join(dir, "dist", relative(join(ROOT, "src"), file)).replace(/\.ts$/, ".js");
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, ts.transpileModule(readFileSync(file, "utf8"), { compilerOptions: options, fileName: file }).outputText);
    }
    cpSync(join(ROOT, "src/admin/assets"), join(dir, "dist/admin/assets"), { recursive: true });
    cpSync(join(ROOT, "bin"), join(dir, "bin"), { recursive: true });
    cpSync(join(ROOT, "package.json"), join(dir, "package.json"));
    symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"), "dir");
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return { bin: join(dir, "bin/portcullis.js"), dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
