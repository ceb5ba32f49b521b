/**
 * The lifecycle of `workers = 2` beyond a plain drain, through the real
 * process: a second SIGTERM during the drain cuts at once (exit 0, one
 * `event=stopped`); `POST /v1/reload` on the admin API reloads every
 * worker, not only the one serving it. (A worker that cannot start:
 * start-failure.test.ts.)
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, describe, test } from "node:test";
import { startEcho, type Origin, withTimeout } from "../gateway/fixtures.js";
import { ClusterProcess, TOKEN, connect, echoes, freePorts } from "./cluster-process.js";

const started: ClusterProcess[] = [];
const origins: Origin[] = [];
after(async () => {
  for (const p of started) await p.cleanup();
  for (const o of origins) await o.close();
});

async function echo(): Promise<Origin> {
  const o = await startEcho();
  origins.push(o);
  return o;
}

function toml(o: { echo: number; port: number; admin?: number; shutdownTimeout?: string; guard?: string[] }): string {
  return [
    "workers = 2",
    `shutdown_timeout = "${o.shutdownTimeout ?? "30s"}"`,
    "[log]",
    'format = "json"',
    "[guard]",
    ...(o.guard ?? []),
    "[[listener]]",
    'name = "relay"',
    'kind = "tcp"',
    `bind = "127.0.0.1:${o.port}"`,
    `upstream = "127.0.0.1:${o.echo}"`,
    ...(o.admin === undefined ? [] : ["[admin]", "enabled = true", `bind = "127.0.0.1:${o.admin}"`, `token = "${TOKEN}"`]),
    "",
  ].join("\n");
}

/** Whether a connection from `from` is admitted (it echoes) or refused (closed by the gateway). */
async function admitted(port: number, from: string): Promise<boolean> {
  const s = net.connect({ port, host: "127.0.0.1", localAddress: from, allowHalfOpen: true });
  s.on("error", () => {});
  try {
    await withTimeout(new Promise((r, j) => (s.once("connect", r), s.once("error", j))), 10_000, "connect");
    await echoes(s, Buffer.from("hi"), 10_000);
    return true;
  } catch {
    return false;
  } finally {
    s.destroy();
  }
}

/** Resolves when the gateway ends `s` (FIN or reset). */
function ended(s: net.Socket): Promise<void> {
  s.on("error", () => {});
  return new Promise((r) => {
    s.once("end", () => r());
    s.once("close", () => r());
  });
}

describe("workers = 2: lifecycle", () => {
  test("a second SIGTERM during the drain cuts every worker's tunnels at once; exit 0, one event=stopped", async () => {
    const e = await echo();
    const [port] = await freePorts(1);
    const p = await ClusterProcess.start(toml({ echo: e.port, port: port!, shutdownTimeout: "60s" }));
    started.push(p);
    const tunnels: net.Socket[] = [];
    for (let i = 0; i < 4; i++) tunnels.push(await connect(port!));
    for (const t of tunnels) await echoes(t, Buffer.from("x"));
    const cuts = tunnels.map(ended);
    p.child.kill("SIGTERM");
    await p.waitFor(() => p.lines().filter((l) => l.msg === "stopping" && typeof l.worker === "number").length === 2, "both workers draining");
    const second = Date.now();
    p.child.kill("SIGTERM");
    // Far inside the 60 s drain: the second signal did it.
    assert.equal(await p.exit(20_000), 0);
    await withTimeout(Promise.all(cuts), 5000, "every tunnel cut");
    assert.ok(Date.now() - second < 20_000);
    assert.ok(p.lines().some((l) => l.msg === "cutting open connections" && l.signal === "SIGTERM"), "the primary logged the cut");
    const stopped = p.lines().filter((l) => l.event === "stopped");
    assert.equal(stopped.length, 1, "one stopped line, from the primary");
    assert.deepEqual({ drained: stopped[0]!.drained, cut: stopped[0]!.cut }, { drained: 0, cut: 4 });
  });

  test("POST /v1/reload on the admin API reloads every worker: a new deny rule refuses in both", async () => {
    const e = await echo();
    const [port, admin] = await freePorts(2);
    const p = await ClusterProcess.start(toml({ echo: e.port, port: port!, admin }));
    started.push(p);
    // Round-robin alternates the workers: six in a row reach both.
    for (let i = 0; i < 6; i++) assert.equal(await admitted(port!, "127.0.0.7"), true, `before: connection ${i + 1} admitted`);
    await p.rewrite(toml({ echo: e.port, port: port!, admin, guard: ['deny = ["127.0.0.7/32"]'] }));
    const res = await withTimeout(fetch(`http://127.0.0.1:${admin}/v1/reload`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` } }), 30_000, "POST /v1/reload");
    const body = await res.text();
    assert.equal(res.status, 200, body);
    assert.match(body, /"ok":\s*true/);
    // Each worker's line and the primary's (log lines are written in batches: wait for them).
    await p.waitFor(() => p.lines().filter((l) => l.msg === "config reloaded" && l.trigger === "SIGHUP").length === 2, "each worker reloaded");
    await p.waitFor(() => p.lines().some((l) => l.msg === "config reloaded" && l.trigger === "admin" && l.workers === 2), "the primary reloaded both");
    for (let i = 0; i < 6; i++) assert.equal(await admitted(port!, "127.0.0.7"), false, `after: connection ${i + 1} refused`);
    assert.equal(await admitted(port!, "127.0.0.8"), true, "another address is still admitted");
  });

});
