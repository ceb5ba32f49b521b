/**
 * `workers = 2` with the memory store: the state lives in the primary, so
 * the guard's limits are exact across the workers. A per-IP cap of 2 admits
 * 2 in all (not 2 per worker); failed logins counted in any worker add up
 * to one ban that cuts the address's tunnels in every worker; a worker
 * killed with its tunnels open gives their slots back at once.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, describe, test } from "node:test";
import { startEcho, type Origin, withTimeout } from "../gateway/fixtures.js";
import { ClusterProcess, TOKEN, echoes, freePorts, series } from "./cluster-process.js";

const started: ClusterProcess[] = [];
const origins: Origin[] = [];
after(async () => {
  for (const p of started) await p.cleanup();
  for (const o of origins) await o.close();
});

async function setup(guard: string[], extra: string[] = []): Promise<{ p: ClusterProcess; relay: number; admin: number; egress: number }> {
  const e = await startEcho();
  origins.push(e);
  const [relay, admin, egress] = await freePorts(3);
  const text = [
    "workers = 2",
    'shutdown_timeout = "1s"',
    "[store]",
    // A loaded machine: a primary slow to answer must not push the workers into their insurance limits.
    'timeout = "5s"',
    "[log]",
    'format = "json"',
    "[guard]",
    ...guard,
    "[[listener]]",
    'name = "relay"',
    'kind = "tcp"',
    `bind = "127.0.0.1:${relay}"`,
    `upstream = "127.0.0.1:${e.port}"`,
    "[admin]",
    "enabled = true",
    `bind = "127.0.0.1:${admin}"`,
    `token = "${TOKEN}"`,
    ...extra.map((l) => l.replace("EGRESS", String(egress))),
    "",
  ].join("\n");
  const p = await ClusterProcess.start(text);
  started.push(p);
  return { p, relay: relay!, admin: admin!, egress: egress! };
}

/** A connection from `from`; resolves with the socket once it echoes (admitted), or undefined when the gateway closes it (refused). */
async function tunnel(port: number, from: string): Promise<net.Socket | undefined> {
  const s = net.connect({ port, host: "127.0.0.1", localAddress: from, allowHalfOpen: true });
  s.on("error", () => {});
  try {
    await withTimeout(new Promise((r, j) => (s.once("connect", r), s.once("error", j))), 10_000, "connect");
    await echoes(s, Buffer.from("hello"), 15_000);
    return s;
  } catch {
    s.destroy();
    return undefined;
  }
}

/** Accepted connections per worker slot, from the aggregated /metrics. */
async function perWorker(p: ClusterProcess, admin: number): Promise<Map<string, number>> {
  const text = await p.metrics(admin);
  const m = new Map<string, number>();
  for (const [, w, n] of text.matchAll(/^portcullis_worker_connections_total\{worker="(\d+)"\} (\d+)$/gm)) m.set(w!, Number(n));
  return m;
}

/** Opens tunnels from `from` until one lands in each worker (read from the per-worker counts). */
async function tunnelsInBothWorkers(p: ClusterProcess, admin: number, port: number, from: string): Promise<net.Socket[]> {
  const held: net.Socket[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < 8 && seen.size < 2; i++) {
    const before = await perWorker(p, admin);
    const s = await tunnel(port, from);
    assert.ok(s, "admitted");
    held.push(s);
    const now = await perWorker(p, admin);
    for (const [w, n] of now) if (n > (before.get(w) ?? 0)) seen.add(w);
  }
  assert.equal(seen.size, 2, "tunnels held in both workers");
  return held;
}

function closed(s: net.Socket): Promise<void> {
  return new Promise((r) => {
    if (s.destroyed || s.readableEnded) return r();
    s.once("close", () => r());
    s.once("end", () => r());
  });
}

describe("workers = 2: limits exact across workers (memory store owned by the primary)", () => {
  test("a per-IP cap of 2 admits 2 across both workers, and a freed slot is one slot", async () => {
    const { p, relay, admin } = await setup(["max_connections_per_ip = 2"]);
    const held = await tunnelsInBothWorkers(p, admin, relay, "127.0.0.3");
    assert.equal(held.length, 2, "the first two land in different workers");
    // Per worker, each has room for one more: only a shared count refuses all of these.
    for (let i = 0; i < 4; i++) assert.equal(await tunnel(relay, "127.0.0.3"), undefined, `attempt ${i + 3} refused`);
    const m = await p.metrics(admin);
    assert.equal(series(m, 'portcullis_rejections_total{limiter="max_connections_per_ip",reason="concurrency_limit"}'), 4);
    // Another address is not affected.
    const other = await tunnel(relay, "127.0.0.4");
    assert.ok(other);
    // One ends: exactly one new one fits.
    held[0]!.destroy();
    await p.waitFor(() => p.stdout.includes('"event":"conn_close","remote_addr":"127.0.0.3"'), "the close seen");
    let again: net.Socket | undefined;
    for (let i = 0; i < 20 && again === undefined; i++) again = await tunnel(relay, "127.0.0.3");
    assert.ok(again, "the freed slot is taken again");
    assert.equal(await tunnel(relay, "127.0.0.3"), undefined, "and only one");
    for (const s of [...held, other, again]) s?.destroy();
  });

  test("failed logins in any worker add up to one ban, which cuts the address's tunnels in both workers", async () => {
    // No users: every password is wrong.
    const { p, relay, admin, egress } = await setup(
      ['ban = { failures = 3, window = "1m", duration = "10m", backoff_after = 100 }'],
      ["[[listener]]", 'name = "egress"', 'kind = "connect"', 'bind = "127.0.0.1:EGRESS"'],
    );
    const held = await tunnelsInBothWorkers(p, admin, relay, "127.0.0.2");
    const cuts = held.map(closed);
    // Three wrong passwords on fresh connections (round-robin spreads them over both workers).
    const bad = Buffer.from("alice:wrong").toString("base64");
    for (let i = 0; i < 3; i++) {
      const s = net.connect({ port: egress, host: "127.0.0.1", localAddress: "127.0.0.2" });
      s.on("error", () => {});
      const reply = await withTimeout(
        new Promise<string>((r) => {
          let got = "";
          // A 407 leaves the connection open for another try: its head is the whole answer.
          s.on("data", (d: Buffer) => {
            got += d.toString();
            if (got.includes("\r\n\r\n")) r(got);
          });
          s.once("close", () => r(got));
          s.write(`CONNECT 127.0.0.1:${relay} HTTP/1.1\r\nHost: 127.0.0.1:${relay}\r\nProxy-Authorization: Basic ${bad}\r\n\r\n`);
        }),
        15_000,
        "auth reply",
      );
      s.destroy();
      // The third failure bans, and the ban may close this very connection before its 407 is written.
      if (i < 2 || reply !== "") assert.match(reply, /^HTTP\/1\.1 407/, `attempt ${i + 1}: ${reply.slice(0, 40)}`);
    }
    await p.waitFor(() => p.lines().some((l) => l.event === "ban" && l.remote_addr === "127.0.0.2"), "the ban logged");
    await withTimeout(Promise.all(cuts), 15_000, "every tunnel of the banned address cut, in both workers");
    for (let i = 0; i < 4; i++) assert.equal(await tunnel(relay, "127.0.0.2"), undefined, "the banned address is refused by every worker");
    assert.ok(await tunnel(relay, "127.0.0.5"), "others still pass");
  });

  test("a worker killed with its tunnels open: the per-IP count drops by exactly its tunnels, at once", async () => {
    const { p, relay, admin } = await setup(["max_connections_per_ip = 2", 'max_connections = 1000']);
    const held = await tunnelsInBothWorkers(p, admin, relay, "127.0.0.6");
    assert.equal(held.length, 2);
    assert.equal(await tunnel(relay, "127.0.0.6"), undefined, "full");
    const gone = held.map((s) => closed(s).then(() => s));
    const [, second] = p.workerPids();
    process.kill(second!, "SIGKILL");
    await p.waitFor(() => p.lines().some((l) => l.msg === "worker exited" && l.pid === second), "the crash logged");
    const exit = p.lines().find((l) => l.msg === "worker exited" && l.pid === second)!;
    assert.ok((exit.released_leases as number) >= 1, `the dead worker's leases released (${String(exit.released_leases)})`);
    // The dead worker's tunnel closed with it; the other one lives on.
    const first = await withTimeout(Promise.race(gone), 10_000, "the dead worker's tunnel closed");
    const survivor = held.find((s) => s !== first)!;
    await echoes(survivor, Buffer.from("still here"));
    // One slot is free again (well before any lease TTL), and only one.
    const fresh = await tunnel(relay, "127.0.0.6");
    assert.ok(fresh, "the dead worker's slot is free");
    assert.equal(await tunnel(relay, "127.0.0.6"), undefined, "the living tunnel still counts");
    // The replacement worker counts in the same store.
    await p.waitFor(() => p.lines().some((l) => l.msg === "worker restarted"), "worker 2 back", 60_000);
    for (let i = 0; i < 4; i++) assert.equal(await tunnel(relay, "127.0.0.6"), undefined, "still exactly 2 with a new worker");
    survivor.destroy();
    fresh.destroy();
  });
});
