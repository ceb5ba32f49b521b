/**
 * Seeded mutations of a well-formed input: bit flips, truncations, splices
 * with another input, length fields that lie, huge headers, repeated and
 * random bytes. The same seed gives the same bytes, so a finding is replayed
 * with `npm run stress -- fuzz --seed N`.
 */
import type { Rng } from "../../../src/core/random.js";

export const MUTATIONS = ["bitflip", "truncate", "splice", "length-lie", "huge-header", "repeat", "random-bytes", "none"] as const;
export type Mutation = (typeof MUTATIONS)[number];

/** Where an input keeps its length fields, so "length-lie" can rewrite one: byte offset and width (big-endian). */
export interface LengthField {
  offset: number;
  width: 1 | 2 | 3;
}

export interface Seed {
  name: string;
  bytes: Buffer;
  lengthFields?: LengthField[];
  /** A text protocol: huge headers and Content-Length lies apply. */
  text?: boolean;
}

export const int = (rng: Rng, n: number): number => Math.floor(rng.next() * n);

export function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[int(rng, xs.length)]!;
}

/** One mutation of `seed` (another seed of the same protocol is the splice partner). */
export function mutate(rng: Rng, seed: Seed, other: Seed, kind: Mutation = pick(rng, MUTATIONS)): { kind: Mutation; bytes: Buffer } {
  const b = Buffer.from(seed.bytes);
  switch (kind) {
    case "bitflip": {
      const flips = 1 + int(rng, 8);
      for (let i = 0; i < flips && b.length > 0; i++) {
        const at = int(rng, b.length);
        b[at] = b[at]! ^ (1 << int(rng, 8));
      }
      return { kind, bytes: b };
    }
    case "truncate":
      return { kind, bytes: b.subarray(0, int(rng, b.length)) };
    case "splice": {
      const cut = int(rng, b.length + 1);
      const from = int(rng, other.bytes.length + 1);
      return { kind, bytes: Buffer.concat([b.subarray(0, cut), other.bytes.subarray(from)]) };
    }
    case "length-lie":
      return { kind, bytes: lieAboutLength(rng, seed, b) };
    case "huge-header": {
      const size = pick(rng, [4 * 1024, 17 * 1024, 64 * 1024, 256 * 1024]);
      if (seed.text) {
        const at = b.indexOf("\r\n");
        const header = Buffer.from(`\r\nX-${"a".repeat(int(rng, 32))}: ${"b".repeat(size)}`);
        return { kind, bytes: at < 0 ? Buffer.concat([b, header]) : Buffer.concat([b.subarray(0, at), header, b.subarray(at)]) };
      }
      // Binary: the input followed by a run of one byte, as a header that never ends.
      return { kind, bytes: Buffer.concat([b, Buffer.alloc(size, int(rng, 256))]) };
    }
    case "repeat": {
      const from = int(rng, b.length);
      const len = 1 + int(rng, Math.max(1, b.length - from));
      const times = 2 + int(rng, 50);
      const chunk = b.subarray(from, from + len);
      return { kind, bytes: Buffer.concat([b.subarray(0, from), ...Array.from({ length: times }, () => chunk), b.subarray(from)]) };
    }
    case "random-bytes": {
      const n = int(rng, 2048);
      const r = Buffer.alloc(n);
      for (let i = 0; i < n; i++) r[i] = int(rng, 256);
      const at = int(rng, b.length + 1);
      return { kind, bytes: Buffer.concat([b.subarray(0, at), r, b.subarray(at)]) };
    }
    case "none":
      return { kind, bytes: b };
  }
}

function lieAboutLength(rng: Rng, seed: Seed, b: Buffer): Buffer {
  const lies = [0, 1, 0xff, 0xffff, 0xffffff];
  if (seed.lengthFields !== undefined && seed.lengthFields.length > 0) {
    const f = pick(rng, seed.lengthFields);
    if (f.offset + f.width <= b.length) {
      const max = 2 ** (8 * f.width) - 1;
      const cur = b.readUIntBE(f.offset, f.width);
      const v = Math.min(max, pick(rng, [...lies, cur + 1, Math.max(0, cur - 1), cur * 2, int(rng, max + 1)]));
      b.writeUIntBE(v, f.offset, f.width);
    }
    return b;
  }
  if (seed.text) {
    const text = b.toString("latin1");
    const value = pick(rng, ["-1", "0", "99999999999999999999", "1e3", "0x10", " 5", "5, 6", String(int(rng, 1 << 20))]);
    const lied = /content-length:[^\r\n]*/i.test(text)
      ? text.replace(/content-length:[^\r\n]*/i, `Content-Length: ${value}`)
      : text.replace("\r\n", `\r\nContent-Length: ${value}`);
    return Buffer.from(lied, "latin1");
  }
  return b;
}
