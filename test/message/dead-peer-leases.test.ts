/**
 * A peer that dies holding leases (a crashed worker) must not keep counting:
 * the host releases every lease that peer acquired and did not release, and
 * only those, so the other peers' counts stay exact.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { MemoryStore } from "../../src/index.js";
import { type MessageChannel, MessageStore, MessageStoreHost } from "../../src/message.js";

/** Two ends of an in-process channel; messages are delivered on a later turn, as over IPC. */
function pair(): [MessageChannel, MessageChannel] {
  const listeners: [((m: unknown) => void)[], ((m: unknown) => void)[]] = [[], []];
  const end = (mine: number): MessageChannel => ({
    postMessage: (m) => {
      const copy = structuredClone(m);
      setImmediate(() => listeners[1 - mine]!.forEach((l) => l(copy)));
    },
    onMessage: (l) => {
      listeners[mine]!.push(l);
      return () => listeners[mine]!.splice(listeners[mine]!.indexOf(l), 1);
    },
  });
  return [end(0), end(1)];
}

for (const ttlMs of [Infinity, 60_000]) {
  test(`releaseLeases frees exactly the dead peer's leases (lease TTL ${ttlMs} ms)`, async () => {
    const shared = new MemoryStore();
    const [aHost, aPeer] = pair();
    const [bHost, bPeer] = pair();
    const hostA = new MessageStoreHost(aHost, { store: shared });
    const hostB = new MessageStoreHost(bHost, { store: shared });
    const a = new MessageStore({ channel: aPeer, timeoutMs: 2000 });
    const b = new MessageStore({ channel: bPeer, timeoutMs: 2000 });
    try {
      const ta = a.leaseTable("per-ip", { limit: 4, ttlMs });
      const tb = b.leaseTable("per-ip", { limit: 4, ttlMs });
      const now = Date.now();
      const g1 = await ta.acquire("10.0.0.1", now);
      const g2 = await ta.acquire("10.0.0.1", now);
      const g3 = await ta.acquire("10.0.0.1", now);
      const gb = await tb.acquire("10.0.0.1", now);
      for (const g of [g1, g2, g3, gb]) assert.ok(typeof g === "object" && g.held > 0);
      // One of A's leases ends normally: only two are still A's.
      assert.equal(await ta.release("10.0.0.1", (g3 as { id: number }).id, now), true);
      assert.equal(hostA.leasesHeld, 2);
      assert.equal(hostB.leasesHeld, 1);
      assert.equal(await tb.held("10.0.0.1", now), 3);

      // A dies: its host gives back what it held, and B's lease still counts.
      a.close();
      hostA.close();
      assert.equal(hostA.releaseLeases(), 2);
      assert.equal(hostA.leasesHeld, 0);
      assert.equal(await tb.held("10.0.0.1", now), 1);
      assert.equal(hostA.releaseLeases(), 0, "a second call releases nothing");
      // The cap is whole again for the living: three more fit beside B's one, the fifth does not.
      for (let i = 0; i < 3; i++) assert.ok(((await tb.acquire("10.0.0.1", now)) as { held: number }).held > 0);
      assert.equal(((await tb.acquire("10.0.0.1", now)) as { held: number }).held, -1);
    } finally {
      a.close();
      b.close();
      hostA.close();
      hostB.close();
    }
  });
}
