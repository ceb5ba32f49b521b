import assert from "node:assert/strict";
import net from "node:net";
import { Writable } from "node:stream";
import { describe, test } from "node:test";
import { ManualClock } from "../../../src/core/clock.js";
import { type Rng, seededRng } from "../../../src/core/random.js";
import { IPT_BURST_MAX_MS, IPT_BURST_MIN_MS, IptController, IptWriter } from "../../../src/features/probe-resistance/ipt.js";

/** An Rng that replays a script, cycling. */
const scripted = (values: number[]): Rng => {
  let i = 0;
  return { next: () => values[i++ % values.length]! };
};

/** A real Writable that records when (on the manual clock) each write reached it. */
class TimedSink extends Writable {
  writes: Array<{ at: number; bytes: number }> = [];
  data: Buffer[] = [];
  constructor(private readonly clock: ManualClock) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.writes.push({ at: this.clock.now(), bytes: chunk.length });
    this.data.push(chunk);
    cb();
  }
}

const settle = () => new Promise<void>((r) => setImmediate(r));

describe("IPT controller", () => {
  test("pending data always gets a burst-range delay; no pending data gets zero", () => {
    const c = new IptController(seededRng(5));
    for (let i = 0; i < 10_000; i++) {
      const pending = i % 2 === 0;
      const d = c.nextDelayMs(pending);
      if (pending) assert.ok(d >= IPT_BURST_MIN_MS && d <= IPT_BURST_MAX_MS, `${d}`);
      else assert.equal(d, 0);
    }
  });

  test("in the idle state pending data still gets a burst delay, never an idle-phase one", () => {
    // 0.99 >= 0.95: leave burst for idle; then every draw is 0.5, which keeps it idle.
    let first = true;
    const c = new IptController({ next: () => (first ? ((first = false), 0.99) : 0.5) });
    c.nextDelayMs(false);
    assert.equal(c.state, "idle");
    for (let i = 0; i < 100; i++) {
      const d = c.nextDelayMs(true);
      assert.equal(c.state, "idle");
      assert.ok(d >= IPT_BURST_MIN_MS && d <= IPT_BURST_MAX_MS, `${d}`);
      assert.equal(c.nextDelayMs(false), 0);
    }
  });

  test("the Markov chain follows scripted transition draws exactly", () => {
    // Each nextDelayMs draws the transition first; with pending=false nothing else is drawn.
    const c = new IptController(scripted([0.1, 0.96, 0.98, 0.995, 0.2]));
    const states = Array.from({ length: 5 }, () => (c.nextDelayMs(false), c.state));
    // burst stays (0.1 < 0.95); leaves (0.96); idle stays (0.98 < 0.99); leaves (0.995); burst stays.
    assert.deepEqual(states, ["burst", "idle", "idle", "burst", "burst"]);
  });

  test("extreme and broken samples are clamped to [0.5 ms, 10 ms]", () => {
    // transition draw, then Box-Muller u1, u2. u1 = 0.999999 -> z ~ +5.3 (huge); with u2 = 0.5 -> z ~ -5.3 (tiny).
    assert.equal(new IptController(scripted([0.1, 0.999999, 0])).nextDelayMs(true), IPT_BURST_MAX_MS);
    assert.equal(new IptController(scripted([0.1, 0.999999, 0.5])).nextDelayMs(true), IPT_BURST_MIN_MS);
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, -1, 1]) {
      const d = new IptController(scripted([bad])).nextDelayMs(true);
      assert.ok(Number.isFinite(d) && d >= IPT_BURST_MIN_MS && d <= IPT_BURST_MAX_MS, `${d} from ${bad}`);
    }
  });
});

describe("IPT writer", () => {
  test("back-to-back data is spaced by the burst delays; every byte arrives once, in order", async () => {
    const clock = new ManualClock();
    const sink = new TimedSink(clock);
    // A constant draw gives the same burst gap whatever the order of draws: ~6.5 ms.
    const constant: Rng = { next: () => 0.9 };
    const gap = new IptController(constant).nextDelayMs(true);
    assert.ok(gap > 6 && gap < 7);
    const w = new IptWriter(sink, { clock, rng: constant });
    const sent: Buffer[] = [];
    for (let i = 0; i < 50; i++) {
      const b = Buffer.alloc(1000, i);
      sent.push(b);
      w.write(b);
      await settle();
      clock.advance(1);
    }
    for (let i = 0; i < 20; i++) {
      clock.advance(10);
      await settle();
    }
    assert.deepEqual(Buffer.concat(sink.data), Buffer.concat(sent));
    for (let i = 1; i < sink.writes.length; i++) {
      const d = sink.writes[i]!.at - sink.writes[i - 1]!.at;
      // Paced by the burst gap, and not held longer than the gap plus the 1 ms arrival step.
      assert.ok(d >= gap && d <= gap + 1, `gap ${i}: ${d}`);
    }
    // 50 chunks arriving 1 ms apart leave in a few paced, coalesced writes.
    assert.ok(sink.writes.length >= 7 && sink.writes.length <= 9, `${sink.writes.length} writes`);
  });

  test("data after a pause longer than a burst gap goes out at once (idle adds nothing)", async () => {
    const clock = new ManualClock();
    const sink = new TimedSink(clock);
    const w = new IptWriter(sink, { clock, delays: { nextDelayMs: (p) => (p ? IPT_BURST_MAX_MS : 0) } });
    for (let i = 0; i < 5; i++) {
      clock.advance(2_000); // a long think time between requests
      const at = clock.now();
      w.write(Buffer.from("x"));
      await settle();
      assert.equal(sink.writes.at(-1)?.at, at, "written the moment it arrived");
    }
    assert.equal(sink.writes.length, 5);
  });

  test("1 MiB at 10 Mbit/s: the added delay stays under 10% of the transfer time, even with worst-case samples", async () => {
    // The seeded controller, and the worst case it can produce: the 10 ms clamp for every gap.
    const worst = { nextDelayMs: (p: boolean) => (p ? IPT_BURST_MAX_MS : 0) };
    for (const delays of [new IptController(seededRng(77)), worst]) {
      const clock = new ManualClock();
      const sink = new TimedSink(clock);
      const w = new IptWriter(sink, { clock, delays });
      const total = 1024 * 1024;
      const mss = 1448;
      const interval = (mss * 8) / 10_000; // ms per segment at 10 Mbit/s
      let sent = 0;
      let lastArrival = 0;
      while (sent < total) {
        const n = Math.min(mss, total - sent);
        clock.advance(interval);
        w.write(Buffer.alloc(n, 1));
        lastArrival = clock.now();
        sent += n;
        await settle();
      }
      w.end();
      for (let i = 0; i < 10 && sink.data.reduce((a, b) => a + b.length, 0) < total; i++) {
        clock.advance(1);
        await settle();
      }
      const received = sink.data.reduce((a, b) => a + b.length, 0);
      assert.equal(received, total);
      const transferMs = lastArrival;
      const added = sink.writes.at(-1)!.at - lastArrival;
      assert.ok(added < 0.1 * transferMs, `added ${added} ms on a ${transferMs} ms transfer`);
      assert.ok(added <= IPT_BURST_MAX_MS);
    }
  });

  test("backpressure: a slow target holds the source instead of buffering without bound", async () => {
    const clock = new ManualClock();
    let release: (() => void) | undefined;
    const slow = new Writable({
      highWaterMark: 1024,
      write(_chunk, _enc, cb) {
        release = cb; // completes only when the test says so
      },
    });
    const w = new IptWriter(slow, { clock, highWaterMark: 64 * 1024 });
    let accepted = 0;
    for (let i = 0; i < 100; i++) {
      if (!w.write(Buffer.alloc(16 * 1024))) break;
      accepted++;
      await settle();
      clock.advance(20);
    }
    assert.ok(accepted < 100, "the writer pushed back");
    assert.ok(w.writableLength <= 128 * 1024, `${w.writableLength} bytes buffered`);
    release?.();
  });

  test("over a real socket with the system clock: all bytes delivered, in order", async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as net.AddressInfo).port;
    const data = Buffer.alloc(256 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    const got = new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("timeout")), 8_000);
      server.once("connection", (s: net.Socket) => {
        const chunks: Buffer[] = [];
        s.on("data", (d: Buffer) => chunks.push(d));
        s.on("end", () => {
          clearTimeout(timer);
          resolve(Buffer.concat(chunks));
        });
      });
    });
    const sock = net.connect(port, "127.0.0.1");
    const w = new IptWriter(sock);
    for (let i = 0; i < data.length; i += 4096) w.write(data.subarray(i, i + 4096));
    w.end();
    assert.deepEqual(await got, data);
    server.close();
  });
});

describe("IPT writer teardown", () => {
  test("a target that fails destroys the writer and drops what it held", async () => {
    const clock = new ManualClock();
    const target = new Writable({ write: (_c, _e, cb) => cb() });
    const w = new IptWriter(target, { clock, delays: { nextDelayMs: (p) => (p ? 10 : 0) } });
    w.on("error", () => {});
    w.write(Buffer.from("a"));
    w.write(Buffer.from("b")); // held for the next burst gap
    target.destroy(new Error("reset"));
    await settle();
    assert.equal(w.destroyed, true);
    assert.equal(clock.pendingTimers(), 0, "no pacing timer left behind");
  });
});
