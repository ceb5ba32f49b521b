/**
 * A worker of `workers = 2` that cannot start (a listener it cannot bind, a
 * file that turned invalid before a restart) makes the primary exit
 * non-zero with one error line instead of restarting it forever.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, describe, test } from "node:test";
import { startEcho, type Origin } from "../gateway/fixtures.js";
import { ClusterProcess, freePorts } from "./cluster-process.js";

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

function toml(o: { echo: number; port: number; shutdownTimeout?: string }): string {
  return [
    "workers = 2",
    `shutdown_timeout = "${o.shutdownTimeout ?? "30s"}"`,
    "[log]",
    'format = "json"',
    "[[listener]]",
    'name = "relay"',
    'kind = "tcp"',
    `bind = "127.0.0.1:${o.port}"`,
    `upstream = "127.0.0.1:${o.echo}"`,
    "",
  ].join("\n");
}

describe("workers = 2: a worker that cannot start", () => {
  test("a listener no worker can bind: the primary exits 1 at start with one error line, no restart loop", async () => {
    const e = await echo();
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, "127.0.0.1", r));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const p = await ClusterProcess.spawn(toml({ echo: e.port, port }));
      started.push(p);
      assert.equal(await p.exit(30_000), 1);
      const errors = p.lines().filter((l) => l.msg === "worker cannot start: stopping the gateway");
      assert.equal(errors.length, 1, `one error line\n${p.stdout}`);
      assert.equal(errors[0]!.level, "error");
      assert.equal(p.lines().filter((l) => l.msg === "worker restarting").length, 0, "not restarted");
      assert.match(p.stderr, /EADDRINUSE/, "the worker's reason is on stderr");
    } finally {
      holder.close();
    }
  });

  test("a worker that crashes and cannot start again (the file turned invalid): the primary gives up after 3 tries and exits 2", async () => {
    const e = await echo();
    const [port] = await freePorts(1);
    const p = await ClusterProcess.start(toml({ echo: e.port, port: port!, shutdownTimeout: "2s" }));
    started.push(p);
    // Only a restarted worker reads the file again: the primary and the live worker run the old one.
    await p.rewrite("workers = 2\n[[listener]]\nname = 3\n");
    process.kill(p.workerPids()[0]!, "SIGKILL");
    assert.equal(await p.exit(30_000), 2);
    const errors = p.lines().filter((l) => l.msg === "worker cannot start: stopping the gateway");
    assert.equal(errors.length, 1, `one error line\n${p.stdout}`);
    assert.equal(errors[0]!.attempts, 3);
    assert.equal(errors[0]!.code, 2);
    assert.equal(p.lines().filter((l) => l.msg === "worker restarting").length, 3, "three restarts, then it gave up");
    assert.equal(p.lines().filter((l) => l.event === "stopped").length, 1, "the live worker drained and the primary logged stopped");
  });
});
