import { after, before } from "node:test";
import { RedisStore } from "../../src/redis.js";
import { conformanceSuite } from "../conformance/suite.js";
import { REDIS_URL, deletePrefix, uniquePrefix } from "./helpers.js";

// The engine's conformance suite, unchanged, on the Redis store: the clock
// is the suite's ManualClock, sent to the scripts instead of Redis TIME.
const prefix = uniquePrefix("conf");
// A generous deadline: this file checks answers, not latency, and the machine is shared.
const store = new RedisStore({ url: REDIS_URL, prefix, timeoutMs: 2000 });

before(async () => {
  if (!(await store.ready(5000))) throw new Error(`redis at ${REDIS_URL} did not answer`);
});

after(async () => {
  await store.close();
  await deletePrefix(prefix);
});

conformanceSuite("redis store", {
  store: () => store,
  answered: () => {
    if (store.mode !== "redis" || store.counters.fallbackDecisions !== 0) throw new Error("the store fell back: this decision did not come from Redis");
  },
});
