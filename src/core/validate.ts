/** Checks of numeric options that throw an InvalidArgumentError naming the option. */
import { InvalidArgumentError } from "./errors.js";

/** A finite number > 0. */
export function positive(param: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw new InvalidArgumentError(param, `must be a finite number > 0, got ${describe(v)}`);
  }
  return v;
}

/** A finite number >= 0. */
export function nonNegative(param: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
    throw new InvalidArgumentError(param, `must be a finite number >= 0, got ${describe(v)}`);
  }
  return v;
}

/** An integer >= min. */
export function integerAtLeast(param: string, v: unknown, min: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
    throw new InvalidArgumentError(param, `must be an integer >= ${min}, got ${describe(v)}`);
  }
  return v;
}

/** A number in [lo, hi]. */
export function inRange(param: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < lo || v > hi) {
    throw new InvalidArgumentError(param, `must be a number in [${lo}, ${hi}], got ${describe(v)}`);
  }
  return v;
}

/** Validates a per-check cost: finite and > 0 (a zero or negative cost is bad input, not a free pass). */
export function cost(v: unknown): number {
  if (typeof v !== "number" || !(v > 0) || v === Infinity) {
    throw new InvalidArgumentError("cost", `must be a finite number > 0, got ${describe(v)}`);
  }
  return v;
}

function describe(v: unknown): string {
  if (typeof v === "number") return String(v);
  if (typeof v === "string") return JSON.stringify(v);
  return typeof v;
}
