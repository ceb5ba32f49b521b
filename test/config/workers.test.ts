import { test } from "node:test";
import assert from "node:assert/strict";
import { availableParallelism } from "node:os";
import { validateConfig } from "../../src/gateway/config/load.js";

const listener = [{ name: "a", kind: "tcp", bind: "127.0.0.1:1", upstream: "127.0.0.1:2" }];

test("workers: 1 by default, a count or \"auto\" (the CPUs) accepted, anything else refused naming the key", () => {
  const dflt = validateConfig({ listener });
  assert.ok(dflt.ok);
  assert.equal(dflt.config.workers, 1);
  for (const [v, n] of [[1, 1], [2, 2], [16, 16], ["auto", availableParallelism()]] as const) {
    const r = validateConfig({ workers: v, listener });
    assert.ok(r.ok, String(v));
    assert.equal(r.config.workers, n, String(v));
  }
  for (const v of [0, -1, 1.5, 257, "2", "all", true]) {
    const r = validateConfig({ workers: v, listener });
    assert.ok(!r.ok, String(v));
    assert.match(r.problems.join("\n"), /^workers: expected an integer from 1 to 256 or "auto"/m, String(v));
  }
});
