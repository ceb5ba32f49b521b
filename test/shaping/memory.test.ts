/**
 * 2,000 throttled connections, each sending as fast as it can, through a
 * relay in its own process: the relay's resident memory must stay bounded,
 * because it reads only what the buckets grant and leaves the rest in the
 * kernel (TCP backpressure).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { systemClock } from "../../src/core/clock.js";
import { blast, sleep, startUpstream, until } from "./harness.js";

const CONNS = 2000;
const MiB = 1024 * 1024;

function ask<T>(child: ChildProcess, msg: string, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${key} from relay`)), 10_000);
    const on = (m: Record<string, unknown>): void => {
      if (key in m) {
        clearTimeout(t);
        child.off("message", on);
        resolve(m[key] as T);
      }
    };
    child.on("message", on);
    child.send(msg);
  });
}

test(`${CONNS} throttled connections sending flat out keep the relay's RSS bounded`, { timeout: 120_000 }, async () => {
  const up = await startUpstream({ send: false });
  const child = fork(fileURLToPath(new URL("./relay-process.ts", import.meta.url)), [
    JSON.stringify({ upstreamPort: up.port, config: { per_ip: { bytes_per_second: "64KiB", burst: "16KiB" } } }),
  ], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const clients: net.Socket[] = [];
  const blasts: { stop(): void }[] = [];
  try {
    const [hello] = (await once(child, "message")) as [{ port: number }];
    await sleep(300);
    const base = await ask<number>(child, "rss", "rss");
    const t0 = systemClock.now();
    // Clients from 100 addresses (127.0.1.1 .. 127.0.1.100), 20 connections each, opened in batches.
    for (let i = 0; i < CONNS; i += 500) {
      const batch = Array.from({ length: 500 }, (_, k) => {
        const s = net.connect({ port: hello.port, host: "127.0.0.1", localAddress: `127.0.1.${((i + k) % 100) + 1}` });
        s.on("error", () => {});
        clients.push(s);
        return once(s, "connect");
      });
      await Promise.all(batch);
    }
    for (const c of clients) blasts.push(blast(c));
    const t1 = systemClock.now();
    await until(() => up.meters.length === CONNS, 30_000, "all upstream connections");
    const t2 = systemClock.now();
    let peak = 0;
    for (let i = 0; i < 8; i++) {
      await sleep(500);
      peak = Math.max(peak, await ask<number>(child, "rss", "rss"));
    }
    const metrics = await ask<{ upload: { bytesRelayed: number; bytesDelayed: number } }>(child, "metrics", "metrics");
    const growth = peak - base;
    const elapsed = (systemClock.now() - t0) / 1000;
    console.log(`# connect ${((t1 - t0) / 1000).toFixed(1)} s, upstream accepts ${((t2 - t1) / 1000).toFixed(1)} s, total ${elapsed.toFixed(1)} s`);
    console.log(`# relay RSS ${(base / MiB).toFixed(1)} MiB idle -> peak ${(peak / MiB).toFixed(1)} MiB with ${CONNS} connections: +${(growth / MiB).toFixed(1)} MiB (${(growth / CONNS / 1024).toFixed(1)} KiB per connection); relayed ${(metrics.upload.bytesRelayed / MiB).toFixed(1)} MiB`);
    assert.ok(metrics.upload.bytesDelayed > 0, "connections were throttled");
    // Per connection: two sockets and their JS objects, the source's buffer (high-water mark + one 64 KiB read) and one grant in flight.
    assert.ok(growth / CONNS < 160 * 1024, `RSS growth ${growth} bytes for ${CONNS} connections`);
    // The caps held: 100 addresses at 64 KiB/s each, plus one burst each.
    const cap = 100 * (64 * 1024 * elapsed + 16 * 1024);
    assert.ok(metrics.upload.bytesRelayed <= cap, `relayed ${metrics.upload.bytesRelayed} > ${cap}`);
  } finally {
    for (const b of blasts) b.stop();
    for (const c of clients) c.destroy();
    child.disconnect();
    await up.close();
  }
});
