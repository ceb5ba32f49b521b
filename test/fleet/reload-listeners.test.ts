/**
 * Reloads of a gateway on Redis leave nothing behind on the store: every
 * reload that changes `[http]` builds a new HTTP limiter (its lockout box),
 * and every reload builds a guard box; each registers for the store's
 * returns from an outage, and must leave when it is replaced. Without that,
 * a gateway reloaded every few minutes for months gathers listeners without
 * bound, each run again at every recovery.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Gateway } from "../../src/gateway/gateway.js";
import type { RedisStore } from "../../src/stores/redis/redis-store.js";
import { LogSink } from "../gateway/fixtures.js";
import { type Upstream, configFromToml, startUpstream } from "../features/http/gateway-helpers.js";
import { deletePrefix } from "../redis/helpers.js";
import { fleetPrefix, redisStoreToml } from "./fleet-processes.js";

const prefix = fleetPrefix("reload");
let up: Upstream;

before(async () => {
  up = await startUpstream();
});

after(async () => {
  await up.close();
  await deletePrefix(prefix);
});

function toml(permits: number): string {
  return `
${redisStoreToml(prefix)}
[[listener]]
name = "api"
kind = "http"
bind = "127.0.0.1:0"
upstream = "http://127.0.0.1:${up.port}"

[[http.route]]
name = "token"
match = "/token"
limit = { algorithm = "fixed_window", permit_limit = ${permits}, window = "60s", key = "ip" }
lockout = { subject = "user" }
`;
}

test("reloads that change [http] on Redis keep the store's recovery listeners bounded", { timeout: 30_000 }, async () => {
  const gateway = await Gateway.open(configFromToml(toml(10)), { logDestination: new LogSink() });
  try {
    await gateway.start();
    const store = gateway.store as RedisStore;
    // The first reload builds the http listener's limiter; the count after it is the steady state.
    await gateway.reload(configFromToml(toml(11)));
    const steady = store.recoveryListenerCount;
    assert.ok(steady >= 1, "the guard's box listens for recoveries");
    for (let i = 0; i < 8; i++) await gateway.reload(configFromToml(toml(12 + i)));
    assert.equal(store.recoveryListenerCount, steady, "one set of listeners, whatever the number of reloads");
  } finally {
    await gateway.stop();
  }
});
