/**
 * The import graph of a TypeScript source tree, read with the TypeScript
 * compiler's own pre-processor (static imports, `import type`, re-exports and
 * `import()` alike: a type-only cycle is still two modules that cannot be
 * understood apart), and its cycles (Tarjan's strongly connected components,
 * each reported as one concrete path).
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";

/** module -> the modules it imports (paths relative to the tree's root, "src/a/b.ts"). */
export type ImportGraph = Map<string, string[]>;

/** Every `.ts` source under `dir` (declaration files are not modules of the tree). */
export function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (e.name.endsWith(".ts") && !e.name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

/** The graph of `files` (name -> text), keyed by name; relative specifiers ("./x.js") resolve to the `.ts` file among `files`. */
export function importGraph(files: ReadonlyMap<string, string>): ImportGraph {
  const graph: ImportGraph = new Map();
  for (const [name, text] of files) {
    const targets = new Set<string>();
    for (const ref of ts.preProcessFile(text, true, true).importedFiles) {
      const spec = ref.fileName;
      if (!spec.startsWith(".")) continue;
      const base = resolve("/", dirname(name), spec);
      for (const candidate of [base.replace(/\.js$/, ".ts"), `${base}.ts`, `${base}/index.ts`]) {
        const rel = relative("/", candidate);
        if (files.has(rel)) {
          targets.add(rel);
          break;
        }
      }
    }
    graph.set(name, [...targets].sort());
  }
  return graph;
}

/** The graph of the `.ts` files under `root/dir`. */
export function importGraphOf(root: string, dir: string): ImportGraph {
  const files = new Map<string, string>();
  for (const f of sourceFiles(join(root, dir))) files.set(relative(root, f), readFileSync(f, "utf8"));
  return importGraph(files);
}

/** One cycle per strongly connected component, as a path that starts and ends at the same module. */
export function findCycles(graph: ImportGraph): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];

  // Recursive: a source tree is a few hundred modules deep at most.
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) components.push(component);
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return components.map((c) => cyclePath(graph, new Set(c)));
}

/** A shortest path from the component's first module (in sorted order) back to itself, inside the component. */
function cyclePath(graph: ImportGraph, component: ReadonlySet<string>): string[] {
  const start = [...component].sort()[0]!;
  const from = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const v = queue[i]!;
    for (const w of graph.get(v) ?? []) {
      if (!component.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let u: string | undefined = v; u !== undefined && u !== start; u = from.get(u)) path.splice(1, 0, u);
        return [...path, start];
      }
      if (!from.has(w)) {
        from.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}
