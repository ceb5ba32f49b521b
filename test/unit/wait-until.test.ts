/**
 * The tests' bounded wait (test/helpers/wait.ts): it resolves with the first
 * truthy answer, sync or async, and fails at its bound naming what it
 * awaited, also when an async check never answers.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { sleep, waitUntil } from "../helpers/wait.js";

describe("waitUntil", () => {
  test("resolves with the first truthy answer of a sync check", async () => {
    let n = 0;
    const v = await waitUntil(() => (++n >= 3 ? `after ${n}` : undefined), { timeoutMs: 2_000, intervalMs: 1, message: "three checks" });
    assert.equal(v, "after 3");
  });

  test("waits on an async check", async () => {
    let n = 0;
    const v = await waitUntil(
      async () => {
        await sleep(1);
        return ++n === 2;
      },
      { timeoutMs: 2_000, intervalMs: 1, message: "two async checks" },
    );
    assert.equal(v, true);
    assert.equal(n, 2);
  });

  test("fails at its bound with an error that names what was awaited", async () => {
    const t0 = performance.now();
    await assert.rejects(waitUntil(() => false, { timeoutMs: 100, message: "the door to open" }), /timed out after 100 ms waiting for the door to open/);
    const took = performance.now() - t0;
    assert.ok(took >= 99, `failed early, after ${took} ms`);
    assert.ok(took < 2_000, `failed late, after ${took} ms`);
  });

  test("an async check that never answers fails at the bound", async () => {
    const t0 = performance.now();
    await assert.rejects(waitUntil(() => new Promise<boolean>(() => {}), { timeoutMs: 100, message: "a hung check" }), /waiting for a hung check/);
    assert.ok(performance.now() - t0 < 2_000);
  });

  test("a check that throws fails the wait with its error", async () => {
    await assert.rejects(
      waitUntil(() => {
        throw new Error("broken check");
      }, { message: "anything" }),
      /broken check/,
    );
  });

  test("sleep pauses at least the time asked", async () => {
    const t0 = performance.now();
    await sleep(30);
    assert.ok(performance.now() - t0 >= 29);
  });
});
