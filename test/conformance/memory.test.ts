import { MemoryStore } from "../../src/index.js";
import { conformanceSuite } from "./suite.js";

// The memory store answers synchronously; the suite awaits every answer, so
// the same cases run on the async stores. A small store per limit keeps LRU
// eviction in play.
conformanceSuite("memory store", { store: () => new MemoryStore({ maxKeys: 64 }) });
