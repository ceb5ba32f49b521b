/**
 * The wrong-password flood against a real `portcullis run` process (connect
 * listener, Basic auth, the default scrypt cost): 50 attackers, each
 * connection from a fresh loopback address with one wrong password, for 10 s,
 * while 4 legitimate clients (each from its own address, right password)
 * keep opening tunnels. The driver is bench/stress/auth-flood.ts (`npm run
 * stress` runs it longer).
 *
 * Bounds (from the issue; generous so the test holds beside a CPU hog on 2
 * cores): during the flood at least 90% of legitimate attempts succeed with
 * a p95 under 2 s; after it, every attempt succeeds, each within 2 s.
 * Before the verifier was bounded this measured 2/6 (33%) during and 0/2
 * after on this machine (issue: 10% and p50 8.3 s). A timing test: it
 * measures durations on real sockets, so it runs alone.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatAuthFlood, runAuthFlood } from "../../bench/stress/auth-flood.js";

test("legitimate clients keep logging in through a 10 s wrong-password flood, and at once after it", { timeout: 180_000 }, async (t) => {
  const r = await runAuthFlood({ durationMs: 10_000, attackers: 50, legitClients: 4, afterMs: 2000 });
  const table = formatAuthFlood(r);
  for (const line of table.split("\n")) t.diagnostic(line);
  assert.ok(r.attackerAttempts >= 50, `the attack ran:\n${table}`);
  assert.ok(r.during.attempts >= 8, `legitimate clients were measured during the flood:\n${table}`);
  assert.ok(r.during.successRatio >= 0.9, `>= 90% success during the flood:\n${table}`);
  assert.ok(r.during.p95Ms < 2000, `p95 under 2 s during the flood:\n${table}`);
  assert.ok(r.after.attempts >= 4, `legitimate clients were measured after the flood:\n${table}`);
  assert.equal(r.after.ok, r.after.attempts, `100% success after the flood:\n${table}`);
  assert.ok(r.after.maxMs < 2000, `each within 2 s after the flood:\n${table}`);
});
