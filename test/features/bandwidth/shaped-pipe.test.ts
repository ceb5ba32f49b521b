import { describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { once } from "node:events";
import { createHash, randomBytes } from "node:crypto";
import { PassThrough } from "node:stream";
import { systemClock } from "../../../src/core/clock.js";
import { SharedBucket } from "../../../src/features/bandwidth/shared-bucket.js";
import { createShapedPipe } from "../../../src/features/bandwidth/shaped-pipe.js";
import { relayShaped } from "../../../src/features/bandwidth/relay.js";
import { openGate } from "../../../src/features/bandwidth/gate.js";
import { waitUntil } from "../../helpers/wait.js";
import { socketPair } from "../../helpers/socket-pair.js";

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

function collect(s: net.Socket): { chunks: Buffer[]; ended: Promise<void> } {
  const chunks: Buffer[] = [];
  s.on("data", (d: Buffer) => chunks.push(d));
  return { chunks, ended: once(s, "end").then(() => undefined) };
}

describe("shaped relay over real sockets", { timeout: 30_000 }, () => {
  test("relays both ways without losing or duplicating a byte, and passes half-close on", async () => {
    const { client, server: relayIn, close: close1 } = await socketPair();
    const { client: relayOut, server, close: close2 } = await socketPair();
    const up = new SharedBucket(systemClock, { bytesPerSecond: 8 * 1024 * 1024, burst: 64 * 1024 });
    const down = new SharedBucket(systemClock, { bytesPerSecond: 8 * 1024 * 1024, burst: 64 * 1024 });
    const relay = relayShaped(relayIn, relayOut, { upload: up.attach(), download: down.attach() });
    const sent = randomBytes(3 * 1024 * 1024 + 17);
    const back = randomBytes(1024 * 1024 + 5);
    const atServer = collect(server);
    const atClient = collect(client);
    // One huge write, far above the burst: it must be split and paced, all of it delivered.
    client.end(sent);
    await atServer.ended;
    assert.equal(sha(Buffer.concat(atServer.chunks)), sha(sent));
    // The client half-closed; the download direction still flows.
    server.end(back);
    await atClient.ended;
    assert.equal(sha(Buffer.concat(atClient.chunks)), sha(back));
    await relay.done;
    assert.equal(relay.uploaded, sent.length);
    assert.equal(relay.downloaded, back.length);
    assert.equal(up.connections + down.connections, 0, "gates released when directions end");
    close1();
    close2();
  });

  test("a reset on one side destroys the other and releases the gates", async () => {
    const { client, server: relayIn, close: close1 } = await socketPair();
    const { client: relayOut, server, close: close2 } = await socketPair();
    // A paused source notices a reset when it next reads, so the rate lets it drain its buffer quickly.
    const b = new SharedBucket(systemClock, { bytesPerSecond: 1024 * 1024, burst: 16 * 1024 });
    const relay = relayShaped(relayIn, relayOut, { upload: b.attach(), download: b.attach() });
    server.on("data", () => {});
    client.write(Buffer.alloc(100_000));
    await waitUntil(() => relay.uploaded > 0, { timeoutMs: 5000, intervalMs: 10, message: "first bytes" });
    client.resetAndDestroy();
    const outcome = await Promise.race([
      relay.done.then(() => "resolved", () => "rejected"),
      new Promise((r) => setTimeout(() => r("timeout"), 5000)),
    ]);
    assert.equal(outcome, "rejected");
    await waitUntil(() => server.destroyed || server.readableEnded, { timeoutMs: 5000, intervalMs: 10, message: "server side closed" });
    await waitUntil(() => b.connections === 0, { timeoutMs: 5000, intervalMs: 10, message: "gates released" });
    close1();
    close2();
  });

  test("holds back a fast sender: the pipe buffers no more than the source's high-water mark plus one read", async () => {
    const { client, server: relayIn, close: close1 } = await socketPair();
    const { client: relayOut, server, close: close2 } = await socketPair();
    const b = new SharedBucket(systemClock, { bytesPerSecond: 64 * 1024, burst: 16 * 1024 });
    const relay = relayShaped(relayIn, relayOut, { upload: b.attach(), download: openGate });
    server.on("data", () => {});
    let written = 0;
    const chunk = Buffer.alloc(64 * 1024);
    // Bounded: at most 64 MiB offered, or 1.5 s.
    const end = systemClock.now() + 1500;
    while (written < 64 * 1024 * 1024 && systemClock.now() < end) {
      if (!client.write(chunk)) await Promise.race([once(client, "drain"), new Promise((r) => setTimeout(r, 50))]);
      written += chunk.length;
      const held = relayIn.readableLength + relayOut.writableLength;
      assert.ok(held <= relayIn.readableHighWaterMark + 64 * 1024 + relayOut.writableHighWaterMark + 16 * 1024, `held ${held}`);
    }
    assert.ok(relay.uploaded < 256 * 1024, `paced: ${relay.uploaded}`);
    assert.ok(client.writableLength > 0 || written < 64 * 1024 * 1024, "the sender is held back");
    relay.destroy();
    client.destroy();
    close1();
    close2();
  });

  test("works on any Readable/Writable pair and stops cleanly", async () => {
    const src = new PassThrough();
    const dst = new PassThrough();
    const got: Buffer[] = [];
    dst.on("data", (d: Buffer) => got.push(d));
    const p = createShapedPipe(src, dst, openGate);
    src.end(Buffer.from("hello"));
    await p.done;
    assert.equal(Buffer.concat(got).toString(), "hello");
    const p2 = createShapedPipe(new PassThrough(), new PassThrough(), openGate);
    p2.stop();
    await assert.rejects(p2.done, /stopped/);
  });
});
