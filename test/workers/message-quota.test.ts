/**
 * The byte quota the primary holds for its workers, over real message
 * channels (worker_threads ports) in one process: two workers' sources draw
 * one key's bytes from one bucket in the primary (the sum of their grants
 * is the bucket's burst, not twice it), a grant is partial when the bucket
 * holds less than asked, keys and rates are separate buckets, and a host
 * that does not answer grants -1 (a failure, which the lease counts).
 * The accept mode follows the reuse_port key.
 */
import assert from "node:assert/strict";
import { MessageChannel } from "node:worker_threads";
import { after, describe, test } from "node:test";
import { acceptMode } from "../../src/cli/workers/accept-mode.js";
import { MessageStore, MessageStoreHost, portChannel } from "../../src/message.js";
import { MessageQuotaSource, isQuotaHost } from "../../src/features/bandwidth/message-quota.js";
import { MemoryStore } from "../../src/stores/memory-store.js";

const closers: Array<() => void> = [];
after(() => {
  for (const c of closers) c();
});

/** A worker's store connected to a host on the shared `store` (or to nobody). */
function worker(store: MemoryStore | undefined): MessageStore {
  const ch = new MessageChannel();
  const host = store === undefined ? undefined : new MessageStoreHost(portChannel(ch.port1), { store });
  const s = new MessageStore({ channel: portChannel(ch.port2), timeoutMs: 2000 });
  closers.push(() => {
    s.close();
    host?.close();
    ch.port1.close();
    ch.port2.close();
  });
  return s;
}

describe("byte quotas held by the primary", () => {
  test("two workers draw one key from one bucket: together they get the burst, not twice it", async () => {
    const shared = new MemoryStore();
    const a = new MessageQuotaSource(worker(shared));
    const b = new MessageQuotaSource(worker(shared));
    // A slow refill (1 byte/s): what they get is the 64 KiB burst.
    const spec = { bytesPerSecond: 1, burst: 64 * 1024 };
    let total = 0;
    for (let i = 0; i < 6; i++) total += (await a.take("id:alice", 16 * 1024, spec)) + (await b.take("id:alice", 16 * 1024, spec));
    assert.ok(total >= 64 * 1024 && total <= 64 * 1024 + 2, `granted ${total}`);
    // Another key, and the same key at another rate, are other buckets.
    assert.equal(await a.take("id:bob", 16 * 1024, spec), 16 * 1024);
    assert.equal(await b.take("id:alice", 1024, { bytesPerSecond: 1, burst: 2048 }), 1024);
  });

  test("a grant is partial when the bucket holds less than the slice", async () => {
    const src = new MessageQuotaSource(worker(new MemoryStore()));
    const spec = { bytesPerSecond: 1, burst: 10_000 };
    assert.equal(await src.take("ip:127.0.0.9", 8192, spec), 8192);
    const rest = await src.take("ip:127.0.0.9", 8192, spec);
    assert.ok(rest >= 1808 && rest <= 1810, `the rest: ${rest}`);
    assert.equal(await src.take("ip:127.0.0.9", 8192, spec), 0);
  });

  test("a host that does not answer grants -1", async () => {
    const s = new MessageStore({ channel: portChannel(new MessageChannel().port2), timeoutMs: 50 });
    closers.push(() => s.close());
    assert.equal(await new MessageQuotaSource(s).take("id:alice", 1024, { bytesPerSecond: 1000 }), -1);
    assert.equal(isQuotaHost(s), true);
    assert.equal(isQuotaHost(new MemoryStore()), false);
  });

  test("the workers use their own SO_REUSEPORT sockets only when reuse_port asks for it", () => {
    assert.equal(acceptMode({ reuse_port: false }), "cluster");
    assert.equal(acceptMode({ reuse_port: true }), "reuseport");
  });
});
