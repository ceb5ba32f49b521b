/**
 * The message store's wire format. Requests `{ pc: 1, id, ops }` carry the
 * operations of one tick; the reply `{ pc: 1, id, r }` carries one result per
 * op, in order (UNKNOWN_TABLE for an op on a table the host does not know,
 * e.g. after the host restarted). Ban events are pushed as `{ pc: 1, ev }`.
 * Numbers that are not finite (Infinity, -Infinity, NaN) are sent as
 * `{ "#": "<n>" }`, since a JSON IPC channel would turn them into null.
 */
export const WIRE = 1;
export const UNKNOWN_TABLE = "?";

export interface Request {
  pc: typeof WIRE;
  id: number;
  ops: unknown[][];
}

export interface Reply {
  pc: typeof WIRE;
  id: number;
  r: unknown[];
}

export interface EventPush {
  pc: typeof WIRE;
  /** [tableId, "ban" | "forget", key, until] */
  ev: [number, "ban" | "forget", string, number];
}

export function encode(v: unknown): unknown {
  if (typeof v === "number") return Number.isFinite(v) ? v : { "#": String(v) };
  if (Array.isArray(v)) return v.map(encode);
  if (v !== null && typeof v === "object") {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = encode(x);
    return o;
  }
  return v;
}

export function decode(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(decode);
  if (v !== null && typeof v === "object") {
    const n = (v as { "#"?: unknown })["#"];
    if (typeof n === "string" && Object.keys(v).length === 1) return Number(n);
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = decode(x);
    return o;
  }
  return v;
}

/** An outcome on the wire: [allowed 1|0, remaining, resetMs, retryAfterMs, reason|null]. */
export type WireOutcome = [number, number, number, number, string | null];

export function isWire(m: unknown): m is { pc: typeof WIRE } {
  return typeof m === "object" && m !== null && (m as { pc?: unknown }).pc === WIRE;
}
