/**
 * The connect listener's password checks go through the gateway's bounded
 * verifier: a check whose client has gone is dropped before it runs, a full
 * queue answers the normal 407 at once (without counting against the
 * address), a reconnecting client is served from the credential cache, and
 * all of it shows in the metrics. Real sockets. So that the first check
 * holds the only slot for as long as the test needs (not for a scrypt run's
 * length, which depends on the machine), libuv's thread pool is first filled
 * with reads of named pipes nobody writes yet, as a flood would fill it;
 * writing to the pipes frees it. Every wait is bounded.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, constants, openSync } from "node:fs";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { threadPoolSize } from "../../src/gateway/identity/config-schema.js";
import { hashPassword } from "../../src/gateway/identity/passwords.js";
import { GatewayMetrics } from "../../src/metrics/gateway-metrics.js";
import { Client, FAST_SCRYPT, type Running, connectHead, startEcho, startGateway, type Origin } from "./fixtures.js";
import { memoryBox } from "../helpers/memory-box.js";
import { waitUntil } from "../helpers/wait.js";

/** Occupies every thread of libuv's pool with an open() of a named pipe, until release(). */
async function holdThreadPool(): Promise<{ release(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "portcullis-pool-"));
  const fifos = Array.from({ length: threadPoolSize() }, (_, i) => join(dir, `fifo${i}`));
  for (const f of fifos) execFileSync("mkfifo", [f]);
  const readers = fifos.map((f) => open(f, "r"));
  return {
    async release() {
      for (const f of fifos) {
        // Non-blocking: ENXIO until the pool thread is in its open(); then the reader's open returns.
        await waitUntil(() => {
          try {
            closeSync(openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
            return true;
          } catch {
            return false;
          }
        }, { timeoutMs: 30_000, message: "a pool thread waiting on the pipe" });
      }
      for (const r of readers) await (await r).close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe("connect listener: bounded password checks", () => {
  let gw: Running;
  let echo: Origin;
  let metrics: GatewayMetrics;
  const drops: string[] = [];
  let started = 0;

  before(async () => {
    echo = await startEcho();
    gw = await startGateway({
      log: { format: "json" },
      users: { alice: await hashPassword("right", FAST_SCRYPT) },
      auth: { max_concurrent_verifications: 1, max_queued_verifications: 2 },
      policy: { rule: [{ identities: ["alice"], hosts: ["*"], ports: ["1-65535"], cidrs: ["127.0.0.0/8"] }] },
      listener: [{ name: "egress", kind: "connect", bind: "127.0.0.1:0" }],
    });
    metrics = new GatewayMetrics(gw.gateway, { processMetrics: false });
    const ee = gw.gateway.events as unknown as NodeJS.EventEmitter;
    ee.on("verification_drop", (e: { reason: string }) => drops.push(e.reason));
    ee.on("verification_wait", () => started++);
  });
  after(async () => {
    metrics?.close();
    await gw?.stop();
    await echo?.close();
  });

  test("a closed client's queued check never runs; a full queue answers 407 at once and is not held against the address", async () => {
    const wrong = (addr: string): Client => {
      const c = new Client(gw.port, addr);
      c.write(connectHead(`127.0.0.1:${echo.port}`, { user: "alice", password: "wrong" }));
      return c;
    };
    const pool = await holdThreadPool();
    const h1 = wrong("127.0.5.1");
    await waitUntil(() => gw.gateway.verifications.running === 1, { timeoutMs: 30_000, message: "first check running" });
    const h2 = wrong("127.0.5.2");
    await waitUntil(() => gw.gateway.verifications.queued === 1, { timeoutMs: 30_000, message: "second check queued" });
    const leaving = wrong("127.0.5.3");
    await waitUntil(() => gw.gateway.verifications.queued === 2, { timeoutMs: 30_000, message: "third check queued" });

    // The queue is full: the next client is answered at once, like a wrong password, and nothing is hashed for it.
    const full = wrong("127.0.5.4");
    await full.until(() => full.text().includes("\r\n\r\n"), 10_000, "407 for the full queue");
    assert.match(full.text(), /^HTTP\/1\.1 407 /);
    assert.deepEqual(drops, ["queue_full"]);
    assert.equal(memoryBox(gw.gateway).status(gw.gateway.keyOf("127.0.5.4")).streak, 0, "not counted as a failed login");

    // The third client gives up: its check leaves the queue without running.
    leaving.destroy();
    await waitUntil(() => drops.length === 2, { timeoutMs: 30_000, message: "drop of the closed client's check" });
    assert.deepEqual(drops, ["queue_full", "closed"]);
    assert.equal(gw.gateway.verifications.queued, 1);
    assert.equal(gw.gateway.verifications.running, 1);

    await pool.release();
    await h1.until(() => h1.text().includes("\r\n\r\n"), 30_000, "answer to the first");
    await h2.until(() => h2.text().includes("\r\n\r\n"), 30_000, "answer to the second");
    assert.match(h1.text(), /^HTTP\/1\.1 407 /);
    assert.match(h2.text(), /^HTTP\/1\.1 407 /);
    assert.equal(started, 2, "only the two clients still there were hashed");
    assert.equal(memoryBox(gw.gateway).status(gw.gateway.keyOf("127.0.5.1")).streak, 1, "a checked wrong password counts");
    for (const c of [h1, h2, full]) c.destroy();

    const text = await metrics.expose();
    assert.match(text, /portcullis_auth_verification_drops_total\{reason="queue_full"\} 1\n/);
    assert.match(text, /portcullis_auth_verification_drops_total\{reason="closed"\} 1\n/);
    assert.match(text, /portcullis_auth_verification_drops_total\{reason="timeout"\} 0\n/);
    assert.match(text, /portcullis_auth_verification_wait_seconds_count\{priority="unknown"\} 2\n/);
    assert.match(text, /portcullis_auth_verifications_queued 0\n/);
    assert.match(text, /portcullis_auth_verifications_running 0\n/);
  });

  test("a client that reconnects with the same credentials is served from the cache, without a check", async () => {
    const login = async (): Promise<string> => {
      const c = new Client(gw.port, "127.0.6.1");
      c.write(connectHead(`127.0.0.1:${echo.port}`, { user: "alice", password: "right" }));
      await c.until(() => c.text().includes("\r\n\r\n"), 30_000, "answer");
      c.destroy();
      return c.text();
    };
    const before = started;
    assert.match(await login(), /^HTTP\/1\.1 200 /);
    assert.equal(started, before + 1);
    assert.match(await login(), /^HTTP\/1\.1 200 /);
    assert.match(await login(), /^HTTP\/1\.1 200 /);
    assert.equal(started, before + 1, "no check for the reconnections");
  });
});
