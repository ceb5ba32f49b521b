/** Byte counts from configuration: numbers, or strings such as "10MiB". */
import { InvalidArgumentError } from "../../core/errors.js";

const UNITS: Record<string, number> = {
  "": 1, b: 1,
  k: 1e3, kb: 1e3, kib: 1024,
  m: 1e6, mb: 1e6, mib: 1024 ** 2,
  g: 1e9, gb: 1e9, gib: 1024 ** 3,
};

/**
 * A byte count from configuration: a number of bytes, or a string such as
 * "10MiB", "1.5 MB", "512KiB" (KB/MB/GB are powers of 1000, KiB/MiB/GiB of
 * 1024). `path` names the key in error messages.
 */
export function parseByteSize(path: string, v: unknown): number {
  if (typeof v === "number") {
    if (Number.isFinite(v) && v > 0) return v;
  } else if (typeof v === "string") {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(v);
    const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
    if (m && unit !== undefined) {
      const n = Number(m[1]) * unit;
      if (n > 0 && Number.isFinite(n)) return n;
    }
  }
  const shown = typeof v === "string" ? JSON.stringify(v.slice(0, 40)) : typeof v === "number" ? String(v) : typeof v;
  throw new InvalidArgumentError(path, `must be a byte size > 0 such as 1048576 or "1MiB", got ${shown}`);
}
