import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ManualClock } from "../../../src/core/clock.js";
import { type GateLimits, type GateOutcome, type VerificationDrop, type VerificationPriority, VerificationGate } from "../../../src/gateway/identity/verification-gate.js";

/** Work the test finishes by hand, recording when it started. */
class Jobs {
  readonly started: string[] = [];
  private readonly finishers = new Map<string, (v: boolean) => void>();
  work(name: string): () => Promise<boolean> {
    return () =>
      new Promise<boolean>((resolve) => {
        this.started.push(name);
        this.finishers.set(name, resolve);
      });
  }
  finish(name: string, v = true): void {
    const f = this.finishers.get(name);
    assert.ok(f, `${name} is running`);
    this.finishers.delete(name);
    f(v);
  }
}

function gateOf(limits: Partial<GateLimits>, clock = new ManualClock()) {
  const waits: Array<[number, VerificationPriority]> = [];
  const drops: VerificationDrop[] = [];
  const gate = new VerificationGate({ concurrency: 1, maxQueued: 10, maxWaitMs: 5000, ...limits }, clock, {
    waited: (ms, p) => waits.push([ms, p]),
    dropped: (r) => drops.push(r),
  });
  return { gate, clock, waits, drops, jobs: new Jobs() };
}

/** Lets promise callbacks run (no time passes on the manual clock). */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe("verification gate", () => {
  test("never runs more than the cap at once; the rest wait in order", async () => {
    const { gate, jobs } = gateOf({ concurrency: 2 });
    const out = ["a", "b", "c", "d", "e"].map((n) => gate.run(jobs.work(n), { priority: "unknown" }));
    await settle();
    assert.deepEqual(jobs.started, ["a", "b"]);
    assert.equal(gate.running, 2);
    assert.equal(gate.queued, 3);
    jobs.finish("b");
    await settle();
    assert.deepEqual(jobs.started, ["a", "b", "c"]);
    assert.equal(gate.running, 2);
    for (const n of ["a", "c", "d", "e"]) {
      await settle();
      jobs.finish(n);
    }
    const results = await Promise.all(out);
    assert.ok(results.every((r) => r.ran && r.value === true));
    assert.equal(gate.running, 0);
    assert.equal(gate.queued, 0);
  });

  test("a full queue fails the newcomer at once, counted, without running it", async () => {
    const { gate, jobs, drops } = gateOf({ concurrency: 1, maxQueued: 2 });
    const held = [gate.run(jobs.work("a"), { priority: "unknown" }), gate.run(jobs.work("b"), { priority: "unknown" }), gate.run(jobs.work("c"), { priority: "unknown" })];
    const refused = await gate.run(jobs.work("d"), { priority: "unknown" });
    assert.deepEqual(refused, { ran: false, reason: "queue_full" });
    assert.deepEqual(drops, ["queue_full"]);
    assert.equal(gate.queued, 2);
    for (const n of ["a", "b", "c"]) {
      await settle();
      jobs.finish(n);
    }
    await Promise.all(held);
    assert.ok(!jobs.started.includes("d"));
  });

  test("trusted waiters go first, and take the place of the newest unknown one when the queue is full", async () => {
    const { gate, jobs, drops, waits } = gateOf({ concurrency: 1, maxQueued: 2 });
    const running = gate.run(jobs.work("running"), { priority: "unknown" });
    const u1 = gate.run(jobs.work("u1"), { priority: "unknown" });
    const u2 = gate.run(jobs.work("u2"), { priority: "unknown" });
    const t1 = gate.run(jobs.work("t1"), { priority: "trusted" });
    assert.deepEqual(await u2, { ran: false, reason: "queue_full" }, "the newest unknown waiter gave up its place");
    assert.deepEqual(drops, ["queue_full"]);
    // A second trusted arrival displaces the last unknown waiter.
    const t2 = gate.run(jobs.work("t2"), { priority: "trusted" });
    assert.deepEqual(await u1, { ran: false, reason: "queue_full" });
    // Now the queue holds two trusted waiters: an unknown newcomer is refused, a trusted one too.
    assert.deepEqual(await gate.run(jobs.work("u3"), { priority: "unknown" }), { ran: false, reason: "queue_full" });
    assert.deepEqual(await gate.run(jobs.work("t3"), { priority: "trusted" }), { ran: false, reason: "queue_full" });
    for (const n of ["running", "t1", "t2"]) {
      await settle();
      jobs.finish(n);
    }
    await Promise.all([running, t1, t2]);
    assert.deepEqual(jobs.started, ["running", "t1", "t2"]);
    assert.deepEqual(
      waits.map(([, p]) => p),
      ["unknown", "trusted", "trusted"],
    );
  });

  test("with free slots trusted work is still served before unknown work queued earlier", async () => {
    const { gate, jobs } = gateOf({ concurrency: 1 });
    const all = [gate.run(jobs.work("first"), { priority: "unknown" }), gate.run(jobs.work("u"), { priority: "unknown" }), gate.run(jobs.work("t"), { priority: "trusted" })];
    for (const n of ["first", "t", "u"]) {
      await settle();
      jobs.finish(n);
    }
    await Promise.all(all);
    assert.deepEqual(jobs.started, ["first", "t", "u"]);
  });

  test("a waiter whose connection closed is dropped before it starts, and frees its place at once", async () => {
    const { gate, jobs, drops } = gateOf({ concurrency: 1, maxQueued: 1 });
    const running = gate.run(jobs.work("running"), { priority: "unknown" });
    const closed = new AbortController();
    const waiting = gate.run(jobs.work("gone"), { priority: "unknown", signal: closed.signal });
    assert.equal(gate.queued, 1);
    closed.abort();
    assert.deepEqual(await waiting, { ran: false, reason: "closed" });
    assert.equal(gate.queued, 0);
    // Its place is free for the next client.
    const next = gate.run(jobs.work("next"), { priority: "unknown" });
    assert.equal(gate.queued, 1);
    // Already closed when it arrives: never queued.
    const late = new AbortController();
    late.abort();
    assert.deepEqual(await gate.run(jobs.work("late"), { priority: "unknown", signal: late.signal }), { ran: false, reason: "closed" });
    jobs.finish("running");
    await settle();
    jobs.finish("next");
    await Promise.all([running, next]);
    assert.deepEqual(jobs.started, ["running", "next"]);
    assert.deepEqual(drops, ["closed", "closed"]);
  });

  test("closing after the work started changes nothing: the answer still comes", async () => {
    const { gate, jobs } = gateOf({ concurrency: 1 });
    const ac = new AbortController();
    const p = gate.run(jobs.work("a"), { priority: "unknown", signal: ac.signal });
    ac.abort();
    jobs.finish("a", false);
    assert.deepEqual(await p, { ran: true, value: false, waitedMs: 0 });
  });

  test("no waiter waits longer than maxWaitMs; the time waited is reported", async () => {
    const { gate, jobs, drops, waits, clock } = gateOf({ concurrency: 1, maxWaitMs: 1000 });
    const running = gate.run(jobs.work("running"), { priority: "unknown" });
    let late: GateOutcome<boolean> | undefined;
    void gate.run(jobs.work("late"), { priority: "unknown" }).then((r) => (late = r));
    clock.advance(400);
    const served = gate.run(jobs.work("served"), { priority: "trusted" });
    clock.advance(599);
    await settle();
    assert.equal(late, undefined, "still waiting at 999 ms");
    clock.advance(1);
    await settle();
    assert.deepEqual(late, { ran: false, reason: "timeout" });
    assert.deepEqual(drops, ["timeout"]);
    clock.advance(300);
    jobs.finish("running");
    await settle();
    jobs.finish("served");
    const r = await served;
    assert.ok(r.ran);
    assert.equal(r.waitedMs, 900);
    assert.deepEqual(waits, [
      [0, "unknown"],
      [900, "trusted"],
    ]);
    await running;
    assert.equal(clock.pendingTimers(), 0, "no timer left behind");
  });

  test("a failing check frees its slot and passes the error on", async () => {
    const { gate, jobs } = gateOf({ concurrency: 1 });
    const bad = gate.run(() => Promise.reject(new Error("boom")), { priority: "unknown" });
    const next = gate.run(jobs.work("next"), { priority: "unknown" });
    await assert.rejects(bad, /boom/);
    await settle();
    jobs.finish("next");
    assert.ok((await next).ran);
  });

  test("a smaller queue on reconfigure drops the newest unknown waiters; a larger cap starts waiters", async () => {
    const { gate, jobs } = gateOf({ concurrency: 1, maxQueued: 3 });
    const running = gate.run(jobs.work("running"), { priority: "unknown" });
    const u1 = gate.run(jobs.work("u1"), { priority: "unknown" });
    const u2 = gate.run(jobs.work("u2"), { priority: "unknown" });
    const t = gate.run(jobs.work("t"), { priority: "trusted" });
    gate.configure({ concurrency: 2, maxQueued: 2, maxWaitMs: 5000 });
    assert.deepEqual(await u2, { ran: false, reason: "queue_full" });
    await settle();
    assert.deepEqual(jobs.started, ["running", "t"], "the new slot went to the trusted waiter");
    assert.equal(gate.queued, 1);
    for (const n of ["running", "t", "u1"]) {
      await settle();
      jobs.finish(n);
    }
    await Promise.all([running, t, u1]);
  });
});
