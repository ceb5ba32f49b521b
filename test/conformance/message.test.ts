/**
 * The conformance suite on the message store, with its host in a process of
 * its own (forked, answering over process IPC: the shape of a primary
 * holding the limits of its workers).
 */
import { type ChildProcess, fork } from "node:child_process";
import { after, before } from "node:test";
import { MessageStore, processChannel } from "../../src/message.js";
import { conformanceSuite } from "./suite.js";

let host: ChildProcess;
let store: MessageStore;

before(async () => {
  host = fork(new URL("./fixtures/message-host.ts", import.meta.url), { execArgv: ["--import", "tsx"], stdio: "inherit" });
  // A generous deadline: this file checks answers, not latency, and the machine is shared.
  store = new MessageStore({ channel: processChannel(host), timeoutMs: 2000 });
  if (!(await store.ready(10_000))) throw new Error("the message store host did not answer");
});

after(() => {
  store.close();
  host.kill();
});

conformanceSuite("message store (host in another process)", {
  store: () => store,
  answered: () => {
    if (store.mode !== "remote" || store.counters.fallbackDecisions !== 0) throw new Error("the store fell back: this decision did not come from the host");
  },
});
