import { MemoryStore, createLimiter } from "../../src/index.js";
import { conformanceSuite } from "./suite.js";

// The memory store answers synchronously; the suite speaks promises so that
// the same table runs on Redis.
conformanceSuite("memory store", async (opts) => {
  const limiter = createLimiter({ ...opts, store: new MemoryStore({ maxKeys: 64 }) });
  return {
    check: async (key: string, cost?: number) => limiter.check(key, cost),
    dispose: () => limiter.dispose(),
  };
});
