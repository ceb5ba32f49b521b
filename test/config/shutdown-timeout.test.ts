import { test } from "node:test";
import assert from "node:assert/strict";
import { validateConfig } from "../../src/gateway/config/load.js";

const listener = [{ name: "a", kind: "tcp", bind: "127.0.0.1:1", upstream: "127.0.0.1:2" }];

test("shutdown_timeout: 30 s by default, 0 or a duration accepted, anything else refused naming the key", () => {
  const dflt = validateConfig({ listener });
  assert.ok(dflt.ok);
  assert.equal(dflt.config.shutdown_timeout, 30_000);
  for (const [v, ms] of [[0, 0], ["0s", 0], ["5s", 5000], ["2m", 120_000]] as const) {
    const r = validateConfig({ shutdown_timeout: v, listener });
    assert.ok(r.ok, String(v));
    assert.equal(r.config.shutdown_timeout, ms, String(v));
  }
  for (const v of [-1, "soon", 5, true]) {
    const r = validateConfig({ shutdown_timeout: v, listener });
    assert.ok(!r.ok, String(v));
    assert.match(r.problems.join("\n"), /^shutdown_timeout: /m, String(v));
  }
});
