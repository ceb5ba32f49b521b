/**
 * `workers = 2` as an operator runs it: a real primary and two real worker
 * processes on real sockets. Both workers accept; a killed worker is
 * replaced; SIGTERM drains every worker and the primary logs one
 * `event=stopped` with the sums; SIGHUP that moves a listener to a new port
 * rolls the workers over without refusing a connection on the listener that
 * stays or cutting an established tunnel.
 */
import assert from "node:assert/strict";
import type net from "node:net";
import { after, describe, test } from "node:test";
import { startEcho, type Origin, withTimeout } from "../gateway/fixtures.js";
import { ClusterProcess, TOKEN, connect, echoes, freePorts, roundTrip, series } from "./cluster-process.js";

const started: ClusterProcess[] = [];
const origins: Origin[] = [];
after(async () => {
  for (const p of started) await p.cleanup();
  for (const o of origins) await o.close();
});

interface Doc {
  echo: number;
  listeners: Array<{ name: string; port: number }>;
  admin?: number;
  shutdownTimeout?: string;
  workers?: number;
}

function toml(d: Doc): string {
  const out = [`workers = ${d.workers ?? 2}`, `shutdown_timeout = "${d.shutdownTimeout ?? "5s"}"`, "[log]", 'format = "json"'];
  for (const l of d.listeners) out.push("[[listener]]", `name = "${l.name}"`, 'kind = "tcp"', `bind = "127.0.0.1:${l.port}"`, `upstream = "127.0.0.1:${d.echo}"`);
  if (d.admin !== undefined) out.push("[admin]", "enabled = true", `bind = "127.0.0.1:${d.admin}"`, `token = "${TOKEN}"`);
  return `${out.join("\n")}\n`;
}

async function run(d: Doc): Promise<ClusterProcess> {
  const p = await ClusterProcess.start(toml(d));
  started.push(p);
  return p;
}

async function echo(): Promise<Origin> {
  const o = await startEcho();
  origins.push(o);
  return o;
}

/** Accepted connections per worker slot, from the aggregated /metrics. */
function perWorker(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const [, w, n] of text.matchAll(/^portcullis_worker_connections_total\{worker="(\d+)"\} (\d+)$/gm)) m.set(w!, Number(n));
  return m;
}

describe("workers = 2", () => {
  test("both workers accept, and /metrics (served once) sums them", async () => {
    const e = await echo();
    const [port, admin] = await freePorts(2);
    const p = await run({ echo: e.port, listeners: [{ name: "relay", port: port! }], admin });
    assert.equal(p.workerPids().length, 2);
    assert.equal(p.stderr.split("admin listener up").length - 1, 1, "one admin listener");
    const n = 40;
    for (let i = 0; i < n; i++) await roundTrip(port!);
    await p.waitFor(() => p.stdout.split('"event":"conn_close"').length - 1 === n, "every connection closed");
    const text = await p.metrics(admin!);
    const counts = perWorker(text);
    assert.deepEqual([...counts.keys()].sort(), ["1", "2"]);
    for (const [w, c] of counts) assert.ok(c > 0, `worker ${w} accepted ${c} of ${n}`);
    assert.equal([...counts.values()].reduce((a, b) => a + b, 0), n);
    assert.equal(series(text, 'portcullis_connections_total{listener="relay",result="accepted"}'), n, "the sum over workers");
    assert.equal(series(text, "portcullis_workers"), 2);
  });

  test("a worker killed with SIGKILL is replaced, and the listener keeps serving", async () => {
    const e = await echo();
    const [port, admin] = await freePorts(2);
    const p = await run({ echo: e.port, listeners: [{ name: "relay", port: port! }], admin });
    const [, second] = p.workerPids();
    process.kill(second!, "SIGKILL");
    await p.waitFor(() => p.lines().some((l) => l.msg === "worker exited" && l.pid === second && l.signal === "SIGKILL"), "the crash logged");
    // Served by the survivor while the slot waits out its back-off.
    await roundTrip(port!);
    await p.waitFor(() => p.lines().some((l) => l.msg === "worker restarted" && l.worker === 2), "worker 2 restarted", 60_000);
    const fresh = p.lines().find((l) => l.msg === "worker restarted")!.pid as number;
    assert.notEqual(fresh, second);
    assert.ok(p.lines().some((l) => l.msg === "worker restarting" && typeof l.restart_in_ms === "number"), "the back-off logged");
    for (let i = 0; i < 20; i++) await roundTrip(port!);
    const text = await p.metrics(admin!);
    assert.equal(series(text, "portcullis_workers"), 2);
    assert.ok((perWorker(text).get("2") ?? 0) > 0, "the new worker 2 accepts");
  });

  test("SIGTERM: every worker drains (shutdown_timeout), one event=stopped with the sums, exit 0", async () => {
    const e = await echo();
    const [port] = await freePorts(1);
    const p = await run({ echo: e.port, listeners: [{ name: "relay", port: port! }], shutdownTimeout: "3s" });
    const tunnels: net.Socket[] = [];
    for (let i = 0; i < 10; i++) tunnels.push(await connect(port!));
    for (const t of tunnels) await echoes(t, Buffer.from("x"));
    const closes = tunnels.map((t) => {
      const chunks: Buffer[] = [];
      t.on("data", (d: Buffer) => chunks.push(d));
      t.on("error", () => {});
      // Half-open sockets: the gateway's FIN shows as "end", its reset as "close".
      return new Promise<number>((r) => {
        const done = (): void => r(Buffer.concat(chunks).length);
        t.once("end", done);
        t.once("close", done);
      });
    });
    p.child.kill("SIGTERM");
    await p.waitFor(() => p.lines().filter((l) => l.msg === "stopping" && typeof l.worker === "number").length === 2, "both workers stopping");
    await assert.rejects(connect(port!), (err: NodeJS.ErrnoException) => err.code === "ECONNREFUSED", "nothing new is accepted");
    const payload = Buffer.alloc(128 * 1024, 5);
    for (const t of tunnels.slice(0, 4)) t.end(payload);
    const finished = await withTimeout(Promise.all(closes.slice(0, 4)), 10_000, "finished tunnels");
    for (const n of finished) assert.equal(n, payload.length, "a tunnel that ends within the drain is intact");
    assert.equal(await p.exit(20_000), 0);
    await withTimeout(Promise.all(closes.slice(4)), 5000, "the rest cut");
    const stopped = p.lines().filter((l) => l.event === "stopped");
    assert.equal(stopped.length, 1, "one stopped line, from the primary");
    assert.deepEqual({ drained: stopped[0]!.drained, cut: stopped[0]!.cut, signal: stopped[0]!.signal }, { drained: 4, cut: 6, signal: "SIGTERM" });
  });

  test("SIGHUP moving a listener to a new port under load: rolled over, nothing refused on the listener that stays, no tunnel cut", async () => {
    const e = await echo();
    const [stay, moveFrom, moveTo] = await freePorts(3);
    const doc: Doc = { echo: e.port, listeners: [{ name: "stay", port: stay! }, { name: "move", port: moveFrom! }] };
    const p = await run(doc);
    const before = p.workerPids();
    // Established tunnels on both listeners, spread over both workers.
    const tunnels: net.Socket[] = [];
    for (let i = 0; i < 4; i++) tunnels.push(await connect(stay!), await connect(moveFrom!));
    for (const t of tunnels) await echoes(t, Buffer.from("before"));
    let cutTunnel = false;
    for (const t of tunnels) t.once("close", () => (cutTunnel = true));

    // Load: new connections on the listener that stays, one after another, through the whole roll.
    let loading = true;
    let served = 0;
    const failures: string[] = [];
    const load = (async () => {
      while (loading) {
        try {
          await roundTrip(stay!);
          served++;
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    })();
    await p.waitFor(() => served >= 5, "load running");
    await p.rewrite(toml({ ...doc, listeners: [{ name: "stay", port: stay! }, { name: "move", port: moveTo! }] }));
    const servedAtHup = served;
    p.child.kill("SIGHUP");
    await p.waitFor(() => p.lines().some((l) => l.msg === "config reloaded" && l.rolled === true), "rolled over", 90_000);
    await p.waitFor(() => served >= servedAtHup + 5, "load after the roll");
    loading = false;
    await load;
    assert.deepEqual(failures, [], "no connection refused or cut on the listener that stays");
    assert.ok(served > servedAtHup, "connections were served during the roll");
    assert.equal(cutTunnel, false, "no established tunnel cut");
    for (const t of tunnels) await echoes(t, Buffer.from("after the roll"));
    await roundTrip(moveTo!);
    // The old workers retire only once their tunnels end: close them, and they leave.
    for (const t of tunnels) t.destroy();
    await p.waitFor(() => before.every((pid) => p.lines().some((l) => l.msg === "stopping" && l.worker !== undefined) && !alive(pid)), "old workers gone");
    await assert.rejects(connect(moveFrom!), (err: NodeJS.ErrnoException) => err.code === "ECONNREFUSED", "the old port is closed");
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
