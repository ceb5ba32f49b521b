/**
 * Graceful stop: accepting stops at once, open connections get
 * `shutdown_timeout` to finish, the rest are cut; a second signal cuts at
 * once. The drain's deadline is checked on a ManualClock; the real process
 * is checked for what an operator sees (refused new connections, intact
 * tunnels, exit 0, one `event=stopped` line with the counts).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import net from "node:net";
import { join } from "node:path";
import { ManualClock } from "../../src/core/clock.js";
import { GatewayProcess } from "../helpers/gateway-process.js";
import { startEcho, startGateway, withTimeout } from "./fixtures.js";


/** Connects to 127.0.0.1:port and resolves once connected (or rejects with the socket error). */
function connect(port: number): Promise<net.Socket> {
  return withTimeout(
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    }),
    5000,
    "connect",
  );
}

/** Everything the socket receives until the other side ends or it closes. */
function collect(s: net.Socket): Promise<{ data: Buffer; error: boolean }> {
  const chunks: Buffer[] = [];
  let error = false;
  s.on("data", (d: Buffer) => chunks.push(d));
  s.on("error", () => (error = true));
  // The test's sockets allow half-open: the gateway's FIN shows as "end", its reset as "close".
  return new Promise((resolve) => {
    const done = (): void => resolve({ data: Buffer.concat(chunks), error });
    s.once("end", done);
    s.once("close", done);
  });
}

/** Sends `payload` through the echo tunnel, ends, and resolves with what came back. */
async function roundTrip(s: net.Socket, payload: Buffer): Promise<Buffer> {
  const done = collect(s);
  s.end(payload);
  return (await withTimeout(done, 10_000, "echo round trip")).data;
}

async function refused(port: number): Promise<boolean> {
  try {
    const s = await connect(port);
    s.destroy();
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ECONNREFUSED";
  }
}

function tcpDoc(upstream: number): Record<string, unknown> {
  return { listener: [{ name: "relay", kind: "tcp", bind: "127.0.0.1:0", upstream: `127.0.0.1:${upstream}` }] };
}

describe("graceful stop (Gateway.stop with a drain)", () => {
  test("stops accepting at once, lets open connections finish, cuts the rest at the deadline", async () => {
    const echo = await startEcho();
    const clock = new ManualClock(0);
    const gw = await startGateway(tcpDoc(echo.port), { clock });
    try {
      const held = await Promise.all([connect(gw.port), connect(gw.port), connect(gw.port)]);
      const closes = held.map(collect);
      // The guard admits asynchronously to the test: wait until the gateway counts all three.
      await withTimeout(
        new Promise<void>((r) => {
          const t = setInterval(() => gw.gateway.openConnections === 3 && (clearInterval(t), r()), 10);
        }),
        5000,
        "three connections open",
      );
      let result: { drained: number; cut: number } | undefined;
      const stopping = gw.gateway.stop({ drainMs: 5000 }).then((r) => (result = r));
      assert.ok(await refused(gw.port), "a new connection is refused once the stop begins");

      // One client finishes by itself during the drain, its bytes intact.
      const payload = Buffer.alloc(200_000, 7);
      const back = await roundTrip(held[0]!, payload);
      assert.ok(back.equals(payload), `echoed ${back.length} of ${payload.length} bytes`);
      clock.advance(4999);
      await new Promise((r) => setImmediate(r));
      assert.equal(result, undefined, "still draining before the deadline");

      clock.advance(1);
      await withTimeout(stopping, 5000, "stop after the deadline");
      assert.deepEqual(result, { drained: 1, cut: 2 });
      const ends = await withTimeout(Promise.all(closes.slice(1)), 5000, "cut connections close");
      assert.equal(ends.length, 2);
    } finally {
      await gw.gateway.stop();
      await echo.close();
    }
  });

  test("ends as soon as the last connection finishes, and cutNow ends the wait early", async () => {
    const echo = await startEcho();
    const clock = new ManualClock(0);
    const gw = await startGateway(tcpDoc(echo.port), { clock });
    try {
      const a = await connect(gw.port);
      const b = await connect(gw.port);
      await withTimeout(
        new Promise<void>((r) => {
          const t = setInterval(() => gw.gateway.openConnections === 2 && (clearInterval(t), r()), 10);
        }),
        5000,
        "two connections open",
      );
      const cut = new AbortController();
      const stopping = gw.gateway.stop({ drainMs: 60_000, cutNow: cut.signal });
      await roundTrip(a, Buffer.from("done"));
      cut.abort();
      const r = await withTimeout(stopping, 5000, "stop after cutNow");
      assert.deepEqual(r, { drained: 1, cut: 1 });
      b.destroy();
    } finally {
      await gw.gateway.stop();
      await echo.close();
    }
  });
});

/** The `event=stopped` line of a gateway's JSON log. */
function stopped(proc: GatewayProcess): Record<string, unknown> | undefined {
  const line = proc.stdout.split("\n").find((l) => l.includes('"event":"stopped"'));
  return line === undefined ? undefined : (JSON.parse(line) as Record<string, unknown>);
}

async function runGateway(upstream: number, shutdownTimeout: string): Promise<{ proc: GatewayProcess; port: number; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), "portcullis-drain-"));
  const file = join(dir, "portcullis.toml");
  const text = [
    `shutdown_timeout = "${shutdownTimeout}"`,
    "[log]",
    'format = "json"',
    "[[listener]]",
    'name = "relay"',
    'kind = "tcp"',
    'bind = "127.0.0.1:0"',
    `upstream = "127.0.0.1:${upstream}"`,
    "",
  ].join("\n");
  await writeFile(file, text);
  const proc = new GatewayProcess(file);
  await proc.waitFor(() => /up on 127\.0\.0\.1:\d+/.test(proc.stderr), "listener up");
  const port = Number(/up on 127\.0\.0\.1:(\d+)/.exec(proc.stderr)![1]);
  return { proc, port, dir };
}

describe("portcullis run: SIGTERM drains", () => {
  test("10 open tunnels, shutdown_timeout = 3s: nothing new accepted, finished tunnels intact, the rest cut, exit 0, event=stopped", async () => {
    const echo = await startEcho();
    const { proc, port, dir } = await runGateway(echo.port, "3s");
    const tunnels: net.Socket[] = [];
    try {
      for (let i = 0; i < 10; i++) tunnels.push(await connect(port));
      // Every tunnel carries bytes before the signal.
      for (const t of tunnels) t.write("x");
      await proc.waitFor(() => proc.stdout.split('"event":"conn_open"').length - 1 === 10, "ten conn_open lines");
      const closes = tunnels.map(collect);
      proc.child.kill("SIGTERM");
      await proc.waitFor(() => proc.stdout.includes('"msg":"stopping"'), "stopping logged");
      assert.ok(await refused(port), "no new connection is accepted after the signal");

      // Five finish within the drain: each gets its whole echo back.
      const payload = Buffer.alloc(256 * 1024, 3);
      for (const t of tunnels.slice(0, 5)) t.end(payload);
      const finished = await withTimeout(Promise.all(closes.slice(0, 5)), 10_000, "finished tunnels");
      for (const f of finished) assert.equal(f.data.length, 1 + payload.length, "a tunnel that finishes during the drain is intact");

      assert.equal(await proc.exit(15_000), 0);
      const cut = await withTimeout(Promise.all(closes.slice(5)), 5000, "cut tunnels closed");
      assert.equal(cut.length, 5);
      assert.deepEqual(
        { event: stopped(proc)?.event, drained: stopped(proc)?.drained, cut: stopped(proc)?.cut, signal: stopped(proc)?.signal },
        { event: "stopped", drained: 5, cut: 5, signal: "SIGTERM" },
      );
      assert.ok(!/\n\s+at /.test(proc.stderr), "no stack trace");
    } finally {
      proc.child.kill("SIGKILL");
      for (const t of tunnels) t.destroy();
      await echo.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a second SIGTERM cuts at once", async () => {
    const echo = await startEcho();
    const { proc, port, dir } = await runGateway(echo.port, "10m");
    const tunnels: net.Socket[] = [];
    try {
      for (let i = 0; i < 2; i++) tunnels.push(await connect(port));
      await proc.waitFor(() => proc.stdout.split('"event":"conn_open"').length - 1 === 2, "two conn_open lines");
      proc.child.kill("SIGTERM");
      await proc.waitFor(() => proc.stdout.includes('"msg":"stopping"'), "stopping logged");
      proc.child.kill("SIGTERM");
      assert.equal(await proc.exit(15_000), 0);
      assert.equal(stopped(proc)?.cut, 2);
      assert.equal(stopped(proc)?.drained, 0);
    } finally {
      proc.child.kill("SIGKILL");
      for (const t of tunnels) t.destroy();
      await echo.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
