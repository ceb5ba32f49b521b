/**
 * Reading a zod schema's structure: which schema describes the value at a
 * key path, and what keys a table there takes. The loader uses it to
 * suggest a known key for a misspelt one and to find the file-path leaves
 * of a document. Only structure is read (tables, arrays, maps, unions and
 * their wrappers); a value checked inside a transform is opaque here.
 */
import type { z } from "zod";

type Node = z.core.$ZodType;

interface Def {
  type: string;
  innerType?: Node;
  in?: Node;
  shape?: Record<string, Node>;
  element?: Node;
  valueType?: Node;
  options?: readonly Node[];
  left?: Node;
  right?: Node;
  getter?: () => Node;
}

const defOf = (n: Node): Def => (n as unknown as { _zod: { def: Def } })._zod.def;

/** The schemas `n` stands for once wrappers (optional, default, pipe input, lazy, ...) are looked through, outermost first. */
export function unwrapped(n: Node): Node[] {
  const out: Node[] = [];
  let cur: Node | undefined = n;
  // Bounded: a schema is a finite tree, but a lazy getter could return itself.
  for (let i = 0; cur !== undefined && i < 32; i++) {
    out.push(cur);
    const d = defOf(cur);
    cur = d.innerType ?? d.in ?? d.getter?.();
  }
  return out;
}

/** The schemas that describe `n`'s child `seg`: a table's key, an array's element, a map's value (several across a union). */
export function childrenOf(n: Node, seg: PropertyKey): Node[] {
  const out: Node[] = [];
  for (const u of unwrapped(n)) {
    const d = defOf(u);
    if (d.type === "object" && typeof seg === "string" && d.shape && Object.hasOwn(d.shape, seg)) out.push(d.shape[seg]!);
    else if (d.type === "array" && typeof seg === "number" && d.element) out.push(d.element);
    else if (d.type === "record" && d.valueType) out.push(d.valueType);
    else if (d.type === "union" && d.options) for (const o of d.options) out.push(...childrenOf(o, seg));
    else if (d.type === "intersection" && d.left && d.right) out.push(...childrenOf(d.left, seg), ...childrenOf(d.right, seg));
  }
  return out;
}

/** Keys the table(s) at `path` take, in the schema's order; empty when the path reaches no table. */
export function keysAt(root: Node, path: readonly PropertyKey[]): string[] {
  let nodes = [root];
  for (const seg of path) nodes = nodes.flatMap((n) => childrenOf(n, seg));
  const keys = new Set<string>();
  for (const n of nodes) {
    for (const u of unwrapped(n)) {
      const d = defOf(u);
      if (d.type === "object" && d.shape) for (const k of Object.keys(d.shape)) keys.add(k);
    }
  }
  return [...keys];
}

/** Whether `n` is (or wraps, or offers in a union) the schema `leaf`. */
export function isLeaf(n: Node, leaf: Node): boolean {
  return unwrapped(n).some((u) => {
    const d = defOf(u);
    return u === leaf || (d.type === "union" && (d.options ?? []).some((o) => isLeaf(o, leaf)));
  });
}

/** Whether `n` accepts a list (looking through wrappers and unions). */
export function takesList(n: Node): boolean {
  return unwrapped(n).some((u) => {
    const d = defOf(u);
    return d.type === "array" || (d.type === "union" && (d.options ?? []).some(takesList));
  });
}
