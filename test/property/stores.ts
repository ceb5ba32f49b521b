/**
 * The stores the model properties run on: memory (in process, sync), Redis
 * (REDIS_URL), and the message store with its host in a forked process.
 * Every limit gets a name of its own, so runs on a shared store never meet.
 * Runs on the async stores are fewer (each step is a round trip), the same
 * properties and generators.
 */
import { type ChildProcess, fork } from "node:child_process";
import { randomUUID } from "node:crypto";
import { after, before, describe } from "node:test";
import { MemoryStore, type Store } from "../../src/index.js";
import { MessageStore, processChannel } from "../../src/message.js";
import { RedisStore } from "../../src/redis.js";
import { REDIS_URL, deletePrefix, uniquePrefix } from "../redis/helpers.js";

export interface PropertyStore {
  readonly label: string;
  /** The store a limit runs on. */
  store(): Store;
  /** A limit name not used before in this run. */
  name(): string;
  /** Runs of a property on this store, from the memory store's count. */
  runs(n: number): number;
  /** Throws when answers did not come from the store (it fell back). */
  answered(): void;
}

interface Opened {
  store(): Store;
  answered(): void;
  close(): Promise<void>;
}

const KINDS: { label: string; share: number; open(): Promise<Opened> }[] = [
  {
    label: "memory store",
    share: 1,
    open: async () => ({ store: () => new MemoryStore(), answered: () => {}, close: async () => {} }),
  },
  {
    label: "redis store",
    share: 10,
    open: async () => {
      const prefix = uniquePrefix("prop");
      const store = new RedisStore({ url: REDIS_URL, prefix, timeoutMs: 2000 });
      if (!(await store.ready(5000))) throw new Error(`redis at ${REDIS_URL} did not answer`);
      return {
        store: () => store,
        answered: () => {
          if (store.counters.fallbackDecisions !== 0) throw new Error("the Redis store fell back");
        },
        close: async () => {
          await store.close();
          await deletePrefix(prefix);
        },
      };
    },
  },
  {
    label: "message store",
    share: 10,
    open: async () => {
      const host: ChildProcess = fork(new URL("../conformance/fixtures/message-host.ts", import.meta.url), { execArgv: ["--import", "tsx"], stdio: "inherit" });
      const store = new MessageStore({ channel: processChannel(host), timeoutMs: 2000 });
      if (!(await store.ready(10_000))) throw new Error("the message store host did not answer");
      return {
        store: () => store,
        answered: () => {
          if (store.counters.fallbackDecisions !== 0) throw new Error("the message store fell back");
        },
        close: async () => {
          store.close();
          host.kill();
        },
      };
    },
  },
];

/** Registers `body` once per store, inside a describe block named for the store. */
export function forEachStore(body: (s: PropertyStore) => void): void {
  const run = randomUUID().slice(0, 8);
  for (const kind of KINDS) {
    let opened: Opened | undefined;
    let n = 0;
    const s: PropertyStore = {
      label: kind.label,
      store: () => opened!.store(),
      name: () => `prop-${run}-${++n}`,
      runs: (k) => Math.max(10, Math.ceil(k / kind.share)),
      answered: () => opened!.answered(),
    };
    describe(kind.label, () => {
      before(async () => {
        opened = await kind.open();
      });
      after(async () => {
        await opened?.close();
      });
      body(s);
    });
  }
}
