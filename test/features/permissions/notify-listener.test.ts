import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { ManualClock } from "../../../src/core/clock.js";
import { NotifyListener } from "../../../src/features/permissions/notify-listener.js";
import { waitUntil, sleep } from "../../helpers/wait.js";

describe("NotifyListener reconnect backoff", () => {
  // A server that accepts and at once drops every connection: each attempt fails for real, and is counted.
  let server: Server;
  let port: number;
  let attempts = 0;

  before(async () => {
    server = createServer((s) => {
      attempts++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as { port: number }).port;
  });

  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });

  test("retries after a backoff that doubles up to the cap, reports the loss once, and stops when closed", async () => {
    const clock = new ManualClock();
    const downs: string[] = [];
    const l = new NotifyListener({
      clientConfig: { host: "127.0.0.1", port, user: "x", database: "x", connectionTimeoutMillis: 2000 },
      channel: "c",
      clock,
      initialBackoffMs: 100,
      maxBackoffMs: 400,
      heartbeatMs: 1e12,
      onNotification: () => {},
      onUp: () => assert.fail("must not come up"),
      onDown: (r) => downs.push(r),
    });
    await l.start();
    await waitUntil(() => attempts === 1 && clock.pendingTimers() === 1, { timeoutMs: 5000, intervalMs: 10, message: "the first attempt to fail" });
    assert.equal(l.isUp, false);
    // Expected waits before attempts 2, 3, 4, 5, 6: 100, 200, 400, 400, 400.
    for (const [n, wait] of [[2, 100], [3, 200], [4, 400], [5, 400], [6, 400]] as const) {
      clock.advance(wait - 1);
      await sleep(20);
      assert.equal(attempts, n - 1, `no attempt ${n} before ${wait} ms`);
      clock.advance(1);
      await waitUntil(() => attempts === n && clock.pendingTimers() === 1, { timeoutMs: 5000, intervalMs: 10, message: `attempt ${n}` });
    }
    assert.equal(downs.length, 1);
    await l.close();
    assert.equal(clock.pendingTimers(), 0);
    clock.advance(10_000);
    await sleep(20);
    assert.equal(attempts, 6);
  });
});
