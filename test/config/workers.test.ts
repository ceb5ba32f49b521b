import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { validateConfig } from "../../src/gateway/config/load.js";
import { reusePortAvailable, reusePortProblems } from "../../src/gateway/config/reuse-port.js";
import { type CliRun, runCli } from "../helpers/cli.js";
import { type Origin, startEcho } from "../gateway/fixtures.js";
import { ClusterProcess, freePorts, roundTrip } from "../workers/cluster-process.js";

/** The CLI with a clean environment (no PORTCULLIS__ overrides leak in), bounded by a timeout. */
function cli(args: string[]): Promise<CliRun> {
  return runCli(args, { cwd: tmpdir(), env: { PATH: process.env.PATH, HOME: process.env.HOME } });
}

const listener = [{ name: "a", kind: "tcp", bind: "127.0.0.1:1", upstream: "127.0.0.1:2" }];

test("workers: 1 by default, a count or \"auto\" (the CPUs) accepted, anything else refused naming the key", () => {
  const dflt = validateConfig({ listener });
  assert.ok(dflt.ok);
  assert.equal(dflt.config.workers, 1);
  for (const [v, n] of [[1, 1], [2, 2], [16, 16], ["auto", availableParallelism()]] as const) {
    const r = validateConfig({ workers: v, listener });
    assert.ok(r.ok, String(v));
    assert.equal(r.config.workers, n, String(v));
  }
  for (const v of [0, -1, 1.5, 257, "2", "all", true]) {
    const r = validateConfig({ workers: v, listener });
    assert.ok(!r.ok, String(v));
    assert.match(r.problems.join("\n"), /^workers: expected an integer from 1 to 256 or "auto"/m, String(v));
  }
});

test("reuse_port: false by default, true or false accepted, anything else refused naming the key", () => {
  const dflt = validateConfig({ listener });
  assert.ok(dflt.ok);
  assert.equal(dflt.config.reuse_port, false);
  for (const v of [true, false]) {
    const r = validateConfig({ reuse_port: v, workers: 2, listener });
    assert.ok(r.ok, String(v));
    assert.equal(r.config.reuse_port, v);
  }
  // With one process there is nothing to share: accepted, and the one socket is a plain one.
  assert.ok(validateConfig({ reuse_port: true, workers: 1, listener }).ok);
  for (const v of ["true", 1, "yes", {}]) {
    const r = validateConfig({ reuse_port: v, listener });
    assert.ok(!r.ok, String(v));
    assert.match(r.problems.join("\n"), /^reuse_port: expected true or false/m, String(v));
  }
});

test("reuse_port = true is refused on a Node without reusePort, in one line naming the key and the Node versions", () => {
  assert.equal(reusePortAvailable("20.20.2"), false);
  assert.equal(reusePortAvailable("22.11.0"), false);
  assert.equal(reusePortAvailable("22.12.0"), true);
  assert.equal(reusePortAvailable("23.0.0"), false);
  assert.equal(reusePortAvailable("23.1.0"), true);
  assert.equal(reusePortAvailable("24.1.0"), true);
  const old = reusePortProblems({ reuse_port: true }, "20.20.2");
  assert.equal(old.length, 1);
  assert.match(old[0]!, /^reuse_port: .*Node 22\.12\+, 23\.1\+ or 24\+.*this is Node 20\.20\.2/);
  assert.deepEqual(reusePortProblems({ reuse_port: true }, "24.1.0"), []);
  assert.deepEqual(reusePortProblems({ reuse_port: false }, "20.20.2"), []);
});

describe("reuse_port through the CLI on this Node", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "portcullis-reuseport-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const write = async (name: string, body: string): Promise<string> => {
    const f = join(dir, name);
    await writeFile(f, `${body}\n[[listener]]\nname = "a"\nkind = "tcp"\nbind = "127.0.0.1:0"\nupstream = "127.0.0.1:9"\n`);
    return f;
  };

  test("a bad type makes check-config and run exit 2 naming reuse_port", async () => {
    const f = await write("bad.toml", 'reuse_port = "yes"');
    for (const cmd of ["check-config", "run"]) {
      const r = await cli([cmd, "-c", f]);
      assert.equal(r.code, 2, `${cmd}: ${r.stderr}`);
      assert.match(r.stderr, /^reuse_port: expected true or false, got "yes"$/m, cmd);
      assert.doesNotMatch(r.stderr, /\n\s+at /, cmd);
    }
  });

  test("reuse_port = true: refused with exit 2 and one line where Node lacks reusePort, accepted where it has it", async () => {
    for (const workers of [2, 1]) {
      const f = await write(`on-${workers}.toml`, `workers = ${workers}\nreuse_port = true\nshutdown_timeout = "1s"`);
      if (!reusePortAvailable()) {
        for (const cmd of ["check-config", "run"]) {
          const r = await cli([cmd, "-c", f]);
          assert.equal(r.code, 2, `${cmd}: ${r.stderr}`);
          const lines = r.stderr.trim().split("\n");
          assert.equal(lines.length, 1, `${cmd}: ${r.stderr}`);
          assert.match(lines[0]!, new RegExp(`^reuse_port: SO_REUSEPORT needs Node 22\\.12\\+, 23\\.1\\+ or 24\\+ .*this is Node ${process.versions.node.replace(/\./g, "\\.")}`), cmd);
        }
      } else {
        const r = await cli(["check-config", "-c", f, "--json"]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal((JSON.parse(r.stdout) as { reuse_port: boolean }).reuse_port, true);
      }
    }
  });

  test("reuse_port = false (the default) runs the workers through the cluster on any Node", async () => {
    const f = await write("off.toml", 'workers = 2\nshutdown_timeout = "1s"');
    const r = await cli(["check-config", "-c", f, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { reuse_port: boolean }).reuse_port, false);
  });
});

describe("reuse_port on reload (workers = 2, the real process)", () => {
  const started: ClusterProcess[] = [];
  const origins: Origin[] = [];
  after(async () => {
    for (const p of started) await p.cleanup();
    for (const o of origins) await o.close();
  });

  test("turning reuse_port on by SIGHUP never changes the running accept mode: refused where Node lacks reusePort, else logged as needing a restart", async () => {
    const origin = await startEcho();
    origins.push(origin);
    const [port] = await freePorts(1);
    const text = (reuse: boolean): string =>
      [`workers = 2`, `reuse_port = ${reuse}`, 'shutdown_timeout = "1s"', "[log]", 'format = "json"', "[[listener]]", 'name = "relay"', 'kind = "tcp"', `bind = "127.0.0.1:${port}"`, `upstream = "127.0.0.1:${origin.port}"`, ""].join("\n");
    const p = await ClusterProcess.start(text(false));
    started.push(p);
    assert.equal(p.lines().find((l) => l.msg === "workers up")?.accept, "cluster");
    const pids = p.workerPids();
    await p.rewrite(text(true));
    p.child.kill("SIGHUP");
    if (!reusePortAvailable()) {
      await p.waitFor(() => p.lines().some((l) => l.msg === "config reload refused"), "reload refused");
      const refused = p.lines().find((l) => l.msg === "config reload refused")!;
      assert.match(String(refused.problems), /^reuse_port: SO_REUSEPORT needs Node 22\.12\+, 23\.1\+ or 24\+/);
    } else {
      await p.waitFor(() => p.lines().some((l) => l.msg === "config reloaded" && l.workers === 2), "reloaded");
      const warn = p.lines().find((l) => l.msg === "config key needs a restart");
      assert.equal(warn?.key, "reuse_port");
      assert.equal(warn?.running, false);
    }
    // The same workers, still serving through the cluster.
    assert.deepEqual(p.workerPids(), pids);
    assert.ok(!p.lines().some((l) => l.msg === "rolling restart"));
    await roundTrip(port!);
  });
});
