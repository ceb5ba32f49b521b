/**
 * A reader that takes everything a bandwidth gate grants, as soon as it is
 * granted: it asks for 64 KiB at a time until the gate says wait, and asks
 * again from the grant callback. Its running total is what the gate let
 * through.
 */
import type { Gate } from "../../src/features/bandwidth/gate.js";

export function greedy(gate: Gate): { total: number } {
  const s = { total: 0 };
  const ask = (): void => {
    for (;;) {
      const g = gate.acquire(64 * 1024, onGrant);
      if (g === 0) return;
      s.total += g;
    }
  };
  const onGrant = (g: number): void => {
    s.total += g;
    ask();
  };
  ask();
  return s;
}
