import assert from "node:assert/strict";
import net from "node:net";
import { describe, test } from "node:test";
import { ManualClock } from "../../../src/core/clock.js";
import { InvalidArgumentError } from "../../../src/core/errors.js";
import { type MaskRelayOptions, type MaskRelaySummary, maskRelayLimits, relayToMask } from "../../../src/features/probe-resistance/mask-relay.js";
import { startRejectionDelay } from "../../../src/features/probe-resistance/rejection-delay.js";
import { closedPort } from "./fixtures.js";
import { waitUntil } from "../../helpers/wait.js";

interface RawMask {
  port: number;
  received: Buffer[];
  sockets: net.Socket[];
  close(): Promise<void>;
}

/** A raw TCP mask host that records what it receives and behaves as `onConn` says. */
async function rawMask(onConn: (s: net.Socket) => void = () => {}): Promise<RawMask> {
  const received: Buffer[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.push(s);
    s.on("data", (d: Buffer) => received.push(d));
    s.on("error", () => {});
    onConn(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    sockets,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

interface Harness {
  client: net.Socket;
  got: Buffer[];
  closed: () => boolean;
  relay: Promise<MaskRelaySummary>;
  close(): void;
}

/**
 * A client connected to a listener that hands the accepted socket, after
 * reading `firstBytes.length` bytes itself, to relayToMask.
 */
async function relayHarness(firstBytes: Buffer, opts: Omit<MaskRelayOptions, "mask"> & { maskPort: number }): Promise<Harness> {
  // Boxed: resolving a promise with a promise would wait for the relay to finish.
  let box!: (p: { relay: Promise<MaskRelaySummary> }) => void;
  const relayP = new Promise<{ relay: Promise<MaskRelaySummary> }>((r) => (box = r));
  const resolveRelay = (relay: Promise<MaskRelaySummary>) => box({ relay });
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => {});
    const chunks: Buffer[] = [];
    let n = 0;
    const onData = (d: Buffer) => {
      chunks.push(d);
      n += d.length;
      if (n >= firstBytes.length) {
        s.removeListener("data", onData);
        s.pause();
        resolveRelay(relayToMask(s, Buffer.concat(chunks), { ...opts, mask: { host: "127.0.0.1", port: opts.maskPort } }));
      }
    };
    if (firstBytes.length === 0) resolveRelay(relayToMask(s, Buffer.alloc(0), { ...opts, mask: { host: "127.0.0.1", port: opts.maskPort } }));
    else s.on("data", onData);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const got: Buffer[] = [];
  let closed = false;
  const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: "127.0.0.1", allowHalfOpen: true });
  client.on("data", (d: Buffer) => got.push(d));
  client.on("error", () => {});
  // The client is half-open capable, so the gateway's FIN shows as "end" before any "close".
  client.on("end", () => {
    closed = true;
    client.end(); // as an ordinary client does once the server has finished
  });
  client.on("close", () => (closed = true));
  client.write(firstBytes);
  const { relay } = await relayP;
  server.close();
  return { client, got, closed: () => closed, relay, close: () => client.destroy() };
}

const total = (bs: Buffer[]) => bs.reduce((a, b) => a + b.length, 0);
const pause = (ms = 30) => new Promise<void>((r) => setTimeout(r, ms));

describe("mask relay", () => {
  test("the mask host receives the already-read bytes and everything after, verbatim, and its answer comes back verbatim", async () => {
    const mask = await rawMask((s) => s.on("end", () => s.end(Buffer.from("ANSWER:" + Buffer.concat(mask.received).toString("hex")))));
    const first = Buffer.from("first-bytes-already-read|");
    const rest = Buffer.from([0, 1, 2, 255, 254, 13, 10, 13, 10]);
    const h = await relayHarness(first, { maskPort: mask.port, deadline: startRejectionDelay({ floorMs: 0, ceilingMs: 0 }) });
    h.client.end(rest);
    const s = await h.relay;
    await waitUntil(h.closed, { timeoutMs: 3_000, message: "client close" });
    assert.deepEqual(Buffer.concat(mask.received), Buffer.concat([first, rest]));
    assert.equal(Buffer.concat(h.got).toString(), "ANSWER:" + Buffer.concat([first, rest]).toString("hex"));
    assert.equal(s.outcome, "completed");
    assert.equal(s.bytesToMask, first.length + rest.length);
    assert.equal(s.bytesToClient, Buffer.concat(h.got).length);
    await mask.close();
  });

  test("mask -> client byte cap: exactly the cap is delivered, then a silent close", async () => {
    const mask = await rawMask((s) => s.write(Buffer.alloc(1024 * 1024, 0x61)));
    const h = await relayHarness(Buffer.from("GET / HTTP/1.1\r\n\r\n"), {
      maskPort: mask.port,
      maxBytesToClient: 100_000,
      deadline: startRejectionDelay({ floorMs: 0, ceilingMs: 0 }),
    });
    const s = await h.relay;
    await waitUntil(h.closed, { timeoutMs: 3_000, message: "client close" });
    assert.equal(total(h.got), 100_000);
    assert.equal(s.outcome, "byte-cap");
    assert.equal(s.bytesToClient, 100_000);
    await mask.close();
  });

  test("client -> mask byte cap counts the already-read bytes", async () => {
    const mask = await rawMask();
    const first = Buffer.alloc(10_000, 0x62);
    const h = await relayHarness(first, { maskPort: mask.port, maxBytesToMask: 50_000, deadline: startRejectionDelay({ floorMs: 0, ceilingMs: 0 }) });
    h.client.write(Buffer.alloc(300_000, 0x63));
    const s = await h.relay;
    await waitUntil(() => total(mask.received) >= 50_000 || mask.sockets.every((x) => x.destroyed), { timeoutMs: 3_000, message: "mask side" });
    await pause();
    assert.equal(total(mask.received), 50_000);
    assert.equal(s.outcome, "byte-cap");
    assert.equal(s.bytesToMask, 50_000);
    await mask.close();
  });

  test("idle cap (injected clock): a silent mask host is dropped after the idle time, not before", async () => {
    const mask = await rawMask();
    const clock = new ManualClock();
    const h = await relayHarness(Buffer.from("hello"), {
      maskPort: mask.port,
      clock,
      idleTimeoutMs: 5_000,
      deadline: startRejectionDelay({ clock, floorMs: 0, ceilingMs: 0 }),
    });
    await waitUntil(() => total(mask.received) === 5, { timeoutMs: 3_000, message: "initial bytes at the mask" });
    clock.advance(4_999);
    await pause();
    assert.equal(h.closed(), false);
    clock.advance(1);
    const s = await h.relay;
    await waitUntil(h.closed, { timeoutMs: 3_000, message: "client close" });
    assert.equal(s.outcome, "idle-timeout");
    assert.equal(total(h.got), 0);
    await mask.close();
  });

  test("activity resets the idle timer; the total cap still ends a trickling relay", async () => {
    const mask = await rawMask();
    const clock = new ManualClock();
    const h = await relayHarness(Buffer.from("x"), {
      maskPort: mask.port,
      clock,
      idleTimeoutMs: 5_000,
      totalTimeoutMs: 12_000,
      deadline: startRejectionDelay({ clock, floorMs: 0, ceilingMs: 0 }),
    });
    await waitUntil(() => mask.sockets.length === 1 && total(mask.received) === 1, { timeoutMs: 3_000, message: "mask connection" });
    for (let i = 1; i <= 2; i++) {
      clock.advance(4_000);
      mask.sockets[0]!.write("t");
      await waitUntil(() => total(h.got) === i, { timeoutMs: 3_000, message: "trickle byte" });
    }
    assert.equal(h.closed(), false, "8 s in, never 5 s idle: still open");
    clock.advance(4_000);
    const s = await h.relay;
    assert.equal(s.outcome, "total-timeout");
    assert.equal(s.bytesToClient, 2);
    await mask.close();
  });

  test("throttle (injected clock): full speed up to the threshold, then paced", async () => {
    const size = 200_000;
    const mask = await rawMask((s) => s.write(Buffer.alloc(size, 0x64)));
    const clock = new ManualClock();
    const h = await relayHarness(Buffer.from("GET"), {
      maskPort: mask.port,
      clock,
      throttle: { afterBytes: 10_000, bytesPerSecond: 10_000 },
      deadline: startRejectionDelay({ clock, floorMs: 0, ceilingMs: 0 }),
    });
    await waitUntil(() => total(h.got) >= 10_000, { timeoutMs: 3_000, message: "the unthrottled part" });
    await pause(100);
    const early = total(h.got);
    assert.ok(early < size, `${early} bytes passed without the clock moving`);
    // 190,000 throttled bytes at 10,000 B/s need about 19 s of clock time.
    for (let i = 0; i < 40 && total(h.got) < size; i++) {
      clock.advance(1_000);
      await pause(10);
    }
    await waitUntil(() => total(h.got) === size, { timeoutMs: 3_000, message: "everything after the clock ran" });
    assert.ok(clock.now() >= 15_000, `delivered after ${clock.now()} ms of clock time`);
    h.close();
    await mask.close();
  });

  test("unreachable mask host: no byte, and the close waits for the normalized delay (injected clock)", async () => {
    const port = await closedPort();
    const clock = new ManualClock();
    const deadline = startRejectionDelay({ clock, floorMs: 700, ceilingMs: 700 });
    const h = await relayHarness(Buffer.from("CONNECT x:443 HTTP/1.1\r\n\r\n"), { maskPort: port, clock, deadline });
    await pause(150); // the refused connect has long happened
    assert.equal(h.closed(), false, "not closed before the delay");
    clock.advance(700);
    const s = await h.relay;
    await waitUntil(h.closed, { timeoutMs: 3_000, message: "client close" });
    assert.equal(total(h.got), 0);
    assert.equal(s.outcome, "unreachable");
    assert.equal(s.bytesToMask, 0);
  });

  test("a configured delay holds back the first byte only: the answer and the close pass together at the deadline", async () => {
    const mask = await rawMask((s) => s.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
    const clock = new ManualClock();
    const h = await relayHarness(Buffer.from("\x00\x01garbage"), {
      maskPort: mask.port,
      clock,
      deadline: startRejectionDelay({ clock, floorMs: 400, ceilingMs: 400 }),
    });
    await waitUntil(() => mask.sockets.length === 1, { timeoutMs: 3_000, message: "mask connection" });
    await pause(80);
    assert.equal(total(h.got), 0, "nothing before the deadline");
    assert.equal(h.closed(), false);
    clock.advance(400);
    await waitUntil(h.closed, { timeoutMs: 3_000, message: "the close right after the answer" });
    assert.equal(Buffer.concat(h.got).toString(), "HTTP/1.1 400 Bad Request\r\n\r\n");
    h.close();
    await h.relay;
    await mask.close();
  });

  test("a client reset mid-relay ends the relay and closes the mask side", async () => {
    const mask = await rawMask();
    const h = await relayHarness(Buffer.from("abc"), { maskPort: mask.port, deadline: startRejectionDelay({ floorMs: 0, ceilingMs: 0 }) });
    await waitUntil(() => mask.sockets.length === 1, { timeoutMs: 3_000, message: "mask connection" });
    h.client.resetAndDestroy();
    await h.relay;
    await waitUntil(() => mask.sockets[0]!.destroyed || mask.sockets[0]!.readableEnded, { timeoutMs: 3_000, message: "mask side closed" });
    await mask.close();
  });

  test("limits are validated with the field named", () => {
    assert.deepEqual(maskRelayLimits(), {
      maxBytesToMask: 5 * 1024 * 1024,
      maxBytesToClient: 5 * 1024 * 1024,
      // Longer than a web server's own waits (nginx: 60 s), so the prober always meets the mask host's timeouts, never ours.
      totalTimeoutMs: 600_000,
      idleTimeoutMs: 120_000,
      connectTimeoutMs: 10_000,
    });
    assert.throws(() => maskRelayLimits({ maxBytesToMask: 0 }), (e: unknown) => e instanceof InvalidArgumentError && e.param === "maxBytesToMask");
    assert.throws(() => maskRelayLimits({ idleTimeoutMs: Number.NaN }), (e: unknown) => e instanceof InvalidArgumentError && e.param === "idleTimeoutMs");
    assert.throws(
      () => maskRelayLimits({ throttle: { afterBytes: 0, bytesPerSecond: 0 } }),
      (e: unknown) => e instanceof InvalidArgumentError && e.param === "throttle.bytesPerSecond",
    );
  });
});

describe("mask relay edge cases", () => {
  test("a client that is already gone: no connection to the mask host is made", async () => {
    const mask = await rawMask();
    const s = new net.Socket();
    s.destroy();
    const summary = await relayToMask(s, Buffer.from("x"), { mask: { host: "127.0.0.1", port: mask.port } });
    assert.equal(summary.outcome, "error");
    await pause(50);
    assert.equal(mask.sockets.length, 0);
    await mask.close();
  });
});
