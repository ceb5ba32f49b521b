/**
 * "did you mean" for a misspelt key: the known key closest to what was
 * written, when it is close enough to be the likely intent (`gaurd` ->
 * `guard`, `max_conection_per_ip` -> `max_connections_per_ip`).
 */

/** Optimal string alignment distance: edits, with a swap of two neighbours counted as one. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array<number>(rows * cols);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[(i - 1) * cols + j]! + 1, d[i * cols + j - 1]! + 1, d[(i - 1) * cols + j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[(i - 2) * cols + j - 2]! + 1);
      d[i * cols + j] = v;
    }
  }
  return d[rows * cols - 1]!;
}

/** Case and `-` versus `_` are never the point of a typo. */
const norm = (s: string): string => s.toLowerCase().replaceAll("-", "_");

/** Longest key compared: a key is a word or a few, never a paragraph (bounds the work on hostile input). */
const MAX_KEY = 64;

/** The known key `written` most likely meant, or undefined when none is close. */
export function didYouMean(written: string, known: readonly string[]): string | undefined {
  if (written.length > MAX_KEY) return undefined;
  const w = norm(written);
  // About one edit in three letters: "gaurd" (1 of 5) is a typo; "port" for "ports" too; "name" for "kind" is not.
  const allowed = Math.max(1, Math.floor(w.length / 3));
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    if (k === written || k.length > MAX_KEY) continue;
    const d = editDistance(w, norm(k));
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return bestD <= allowed ? best : undefined;
}
