/** Destination port ranges: "443" or "8000-8100" (inclusive). */
export interface PortRange {
  readonly min: number;
  readonly max: number;
}

function port(s: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(s)) return undefined;
  const n = Number(s);
  return n >= 1 && n <= 65535 ? n : undefined;
}

export function parsePortRange(s: string): PortRange | undefined {
  const m = /^([0-9]+)(?:-([0-9]+))?$/.exec(s.trim());
  if (!m) return undefined;
  const min = port(m[1]!);
  const max = m[2] === undefined ? min : port(m[2]);
  if (min === undefined || max === undefined || min > max) return undefined;
  return { min, max };
}

export function isValidPortRange(min: number, max: number): boolean {
  return Number.isInteger(min) && Number.isInteger(max) && min >= 1 && max <= 65535 && min <= max;
}

export function formatPortRange(min: number, max: number): string {
  return min === max ? String(min) : `${min}-${max}`;
}
