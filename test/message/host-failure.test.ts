/**
 * The message store when its host dies and comes back, with real processes:
 * the host is killed (SIGKILL) under the checks, the store's failure mode
 * answers (insurance: the local limit), nothing throws or rejects, and once
 * a new host answers on the channel the store returns to it and defines its
 * tables there again. Also: a host in a worker thread, over a MessagePort.
 */
import assert from "node:assert/strict";
import { type ChildProcess, fork } from "node:child_process";
import { after, describe, test } from "node:test";
import { Worker } from "node:worker_threads";
import { ManualClock, createLimiter } from "../../src/index.js";
import { type MessageChannel, MessageStore, portChannel } from "../../src/message.js";
import { UnhandledRejections } from "../redis/helpers.js";
import { waitUntil } from "../helpers/wait.js";

const HOST = new URL("../conformance/fixtures/message-host.ts", import.meta.url);
/**
 * Bound of a host's start (a fresh process compiling TypeScript through tsx):
 * about a second on an idle machine, 10-20 s beside CPU hogs on a shared
 * 2-core one. It bounds a start that never comes; what the tests assert about
 * the store's modes does not depend on it.
 */
const HOST_START_MS = 60_000;
/** A test's bound: two host starts and the checks between them. */
const TEST_MS = 2 * HOST_START_MS + 30_000;
const unhandled = new UnhandledRejections();
unhandled.start();
const children: ChildProcess[] = [];

after(() => {
  unhandled.stop();
  for (const c of children) c.kill("SIGKILL");
});

/** A channel to whichever host process is current (a primary re-forks a dead one). */
class SwitchableChannel implements MessageChannel {
  private listener: ((m: unknown) => void) | undefined;
  private child: ChildProcess | undefined;

  attach(child: ChildProcess): void {
    this.child = child;
    child.on("message", (m) => {
      if (this.child === child) this.listener?.(m);
    });
  }

  postMessage(m: unknown): void {
    const c = this.child;
    if (c === undefined || !c.connected) return;
    c.send(m as object, () => {
      // A send on a dying channel is a lost message: the store's deadline reports it.
    });
  }

  onMessage(listener: (m: unknown) => void): () => void {
    this.listener = listener;
    return () => {
      this.listener = undefined;
    };
  }
}

function startHost(): ChildProcess {
  const c = fork(HOST, { execArgv: ["--import", "tsx"], stdio: "inherit" });
  children.push(c);
  return c;
}

async function kill(c: ChildProcess): Promise<void> {
  const exited = new Promise((r) => c.once("exit", r));
  c.kill("SIGKILL");
  await exited;
}

describe("message store host killed and restarted", () => {
  test("insurance answers while the host is gone; the store returns to the new host on its own", { timeout: TEST_MS }, async () => {
    const channel = new SwitchableChannel();
    let host = startHost();
    channel.attach(host);
    const modes: string[] = [];
    const store = new MessageStore({
      channel,
      timeoutMs: 300,
      probeIntervalMs: 50,
      expectedInstances: 2,
      events: { onModeChange: (from, to) => modes.push(`${from}->${to}`) },
    });
    try {
      assert.ok(await store.ready(HOST_START_MS), "host answers");
      const clock = new ManualClock(0);
      const l = createLimiter({ algorithm: "gcra", rate: 1, periodMs: 1e9, burst: 4, name: "r", store, clock });
      assert.deepEqual([(await l.check("k")).allowed, (await l.check("k")).remaining], [true, 2], "from the host");

      await kill(host);
      const during = [];
      for (let i = 0; i < 4; i++) during.push(await l.check("k"));
      assert.equal(store.mode, "insurance");
      assert.deepEqual(
        during.map((d) => d.allowed),
        [true, true, false, false],
        "burst 4 / 2 instances: 2 local permits",
      );
      assert.ok(store.counters.fallbackDecisions >= 4);

      host = startHost();
      channel.attach(host);
      await waitUntil(() => store.mode === "remote", { timeoutMs: HOST_START_MS, message: "the store back on the new host" });
      const back = await l.check("k");
      assert.deepEqual([back.allowed, back.remaining], [true, 3], "the new host's fresh state, the table defined there again");
      assert.deepEqual(modes, ["remote->insurance", "insurance->remote"]);
      assert.deepEqual(unhandled.seen, []);
    } finally {
      store.close();
    }
  });

  test("closed: store_unavailable while the host is gone", { timeout: TEST_MS }, async () => {
    const channel = new SwitchableChannel();
    const host = startHost();
    channel.attach(host);
    const store = new MessageStore({ channel, timeoutMs: 300, probeIntervalMs: 100, onFailure: "closed" });
    try {
      assert.ok(await store.ready(HOST_START_MS), "host answers");
      const l = createLimiter({ algorithm: "fixed_window", permitLimit: 5, windowMs: 1000, name: "c", store, clock: new ManualClock(0) });
      assert.equal((await l.check("k")).allowed, true);
      await kill(host);
      const d = await l.check("k");
      assert.deepEqual([d.allowed, d.reason, d.retryAfterMs], [false, "store_unavailable", 100]);
    } finally {
      store.close();
    }
  });
});

describe("message store host in a worker thread", () => {
  test("limits answer over a MessagePort", { timeout: TEST_MS }, async () => {
    // Node 20 starts a worker before tsx's hooks apply to it: the worker registers them, then loads the host.
    const w = new Worker(`import("tsx/esm/api").then((m) => { m.register(); return import(${JSON.stringify(HOST.href)}); })`, { eval: true });
    const store = new MessageStore({ channel: portChannel(w), timeoutMs: 2000 });
    try {
      assert.ok(await store.ready(HOST_START_MS), "host answers");
      const l = createLimiter({ algorithm: "gcra", rate: 2, burst: 2, name: "t", store, clock: new ManualClock(0) });
      const got = [];
      for (let i = 0; i < 3; i++) got.push(await l.check("k"));
      assert.deepEqual(
        got.map((d) => [d.allowed, d.remaining, d.retryAfterMs]),
        [
          [true, 1, 0],
          [true, 0, 0],
          [false, 0, 500],
        ],
      );
      assert.equal(store.counters.fallbackDecisions, 0);
    } finally {
      store.close();
      await w.terminate();
    }
  });
});
