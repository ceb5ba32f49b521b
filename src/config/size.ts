/**
 * Byte sizes in configuration: `10MiB`, `512KiB`, `1GB`, `1_000_000`, or a
 * plain integer. Binary units (KiB, MiB, GiB) are powers of 1024; decimal
 * units (kB, MB, GB) powers of 1000.
 */
const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

const SIZE = /^(\d+(?:_\d+)*(?:\.\d+)?)\s*([a-z]*)$/i;

/** Bytes of a size (string or integer), or undefined when it is not one. */
export function parseSize(v: unknown): number | undefined {
  if (typeof v === "number") return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  if (typeof v !== "string" || v.length > 64) return undefined;
  const m = SIZE.exec(v.trim());
  if (!m) return undefined;
  const unit = m[2]!.toLowerCase();
  const mult = unit === "" ? 1 : UNITS[unit];
  if (mult === undefined) return undefined;
  const bytes = Number(m[1]!.replaceAll("_", "")) * mult;
  return Number.isSafeInteger(Math.round(bytes)) && Number.isInteger(bytes) ? bytes : undefined;
}
