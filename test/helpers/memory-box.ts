/**
 * The penalty box of a gateway on the memory store, with its synchronous
 * surface (a gateway's box answers promises on a shared store).
 */
import assert from "node:assert/strict";
import type { PenaltyBox } from "../../src/limiter/penalty-box.js";

export function memoryBox(gw: { readonly penaltyBox: PenaltyBox<boolean> }): PenaltyBox<true> {
  assert.equal(gw.penaltyBox.sync, true, "the gateway runs on the memory store");
  return gw.penaltyBox as PenaltyBox<true>;
}
