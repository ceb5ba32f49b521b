import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import net from "node:net";
import { join } from "node:path";
import { GatewayProcess } from "../helpers/gateway-process.js";
import { configOf, connectDoc, probe, startGateway, userHash } from "./fixtures.js";
import { sleep } from "../helpers/wait.js";


async function fileText(perIp: number | string, watch = false): Promise<string> {
  return [
    `watch = ${watch}`,
    "[log]",
    'format = "json"',
    "[users]",
    `alice = "${await userHash("s3cret")}"`,
    "[guard]",
    `max_connections_per_ip = ${typeof perIp === "number" ? perIp : JSON.stringify(perIp)}`,
    "[[listener]]",
    'name = "egress"',
    'kind = "connect"',
    'bind = "127.0.0.1:0"',
    "",
  ].join("\n");
}


/** How many connections from `ip` are served before one is refused (at most `max` tried). */
async function servedFrom(port: number, ip: string, max: number): Promise<number> {
  const held = [];
  let served = 0;
  for (let i = 0; i < max; i++) {
    const p = await probe(port, ip);
    held.push(p.client);
    if (!p.served) break;
    served++;
  }
  for (const c of held) c.destroy();
  await sleep(100);
  return served;
}

describe("reload", () => {
  test("SIGHUP applies a good file, refuses a bad one and keeps running; SIGTERM stops cleanly", async () => {
    const dir = await mkdtemp(join(tmpdir(), "portcullis-reload-"));
    const file = join(dir, "portcullis.toml");
    await writeFile(file, await fileText(1));
    const proc = new GatewayProcess(file);
    try {
      await proc.waitFor(() => /up on 127\.0\.0\.1:\d+/.test(proc.stderr), "listener up");
      assert.match(proc.stderr, /listener egress \(connect\) up on 127\.0\.0\.1:\d+/);
      const port = Number(/up on 127\.0\.0\.1:(\d+)/.exec(proc.stderr)![1]);
      assert.equal(await servedFrom(port, "127.0.13.1", 4), 1);

      await writeFile(file, await fileText(3));
      proc.child.kill("SIGHUP");
      await proc.waitFor(() => proc.count("config reloaded") === 1, "reloaded");
      assert.equal(await servedFrom(port, "127.0.13.2", 5), 3);

      await writeFile(file, await fileText("x"));
      proc.child.kill("SIGHUP");
      await proc.waitFor(() => proc.count("config reload refused") === 1, "refused");
      assert.match(proc.stdout, /guard\.max_connections_per_ip: expected a positive integer, got \\"x\\"/);
      assert.equal(await servedFrom(port, "127.0.13.3", 5), 3, "the old configuration keeps running");

      proc.child.kill("SIGTERM");
      assert.equal(await proc.exit(), 0);
      assert.ok(!/\n\s+at /.test(proc.stderr));
    } finally {
      proc.child.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("shutdown_timeout = 0: SIGTERM with relayed connections open (one mid-transfer) exits 0 within seconds", async () => {
    const upstream = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on("error", () => s.destroy());
      s.resume();
      // Keeps sending until the gateway goes away.
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = (): void => {
        while (!s.destroyed && s.write(chunk));
      };
      s.on("drain", pump);
      pump();
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const dir = await mkdtemp(join(tmpdir(), "portcullis-stop-"));
    const file = join(dir, "portcullis.toml");
    const up = (upstream.address() as net.AddressInfo).port;
    // shutdown_timeout = 0: cut at once (the drain itself is test/gateway/shutdown.test.ts).
    await writeFile(file, ["shutdown_timeout = 0", "[log]", 'format = "json"', "[[listener]]", 'name = "relay"', 'kind = "tcp"', 'bind = "127.0.0.1:0"', `upstream = "127.0.0.1:${up}"`, ""].join("\n"));
    const proc = new GatewayProcess(file);
    const clients: net.Socket[] = [];
    try {
      await proc.waitFor(() => /up on 127\.0\.0\.1:\d+/.test(proc.stderr), "listener up");
      const port = Number(/up on 127\.0\.0\.1:(\d+)/.exec(proc.stderr)![1]);
      let received = 0;
      for (let i = 0; i < 3; i++) {
        const c = net.connect({ port, host: "127.0.0.1" });
        c.on("error", () => undefined);
        // The first reads; the others never do, so their relays sit with full buffers.
        if (i === 0) c.on("data", (d: Buffer) => (received += d.length));
        clients.push(c);
      }
      await proc.waitFor(() => received > 1024 * 1024, "data flowing");
      const t0 = Date.now();
      proc.child.kill("SIGTERM");
      assert.equal(await proc.exit(), 0);
      assert.ok(Date.now() - t0 < 5000, `stopped in ${Date.now() - t0} ms`);
      assert.ok(!/\n\s+at /.test(proc.stderr));
    } finally {
      proc.child.kill("SIGKILL");
      for (const c of clients) c.destroy();
      upstream.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("with watch = true a ConfigMap-style symlink swap reloads the file", async () => {
    // Kubernetes mounts: portcullis.toml -> ..data/portcullis.toml, ..data -> ..v1; an update points ..data at ..v2.
    const dir = await mkdtemp(join(tmpdir(), "portcullis-watch-"));
    await mkdir(join(dir, "..v1"));
    await mkdir(join(dir, "..v2"));
    await writeFile(join(dir, "..v1", "portcullis.toml"), await fileText(1, true));
    await writeFile(join(dir, "..v2", "portcullis.toml"), await fileText(2, true));
    await symlink("..v1", join(dir, "..data"));
    await symlink(join("..data", "portcullis.toml"), join(dir, "portcullis.toml"));
    const proc = new GatewayProcess(join(dir, "portcullis.toml"));
    try {
      await proc.waitFor(() => /up on 127\.0\.0\.1:\d+/.test(proc.stderr), "listener up");
      const port = Number(/up on 127\.0\.0\.1:(\d+)/.exec(proc.stderr)![1]);
      assert.equal(await servedFrom(port, "127.0.14.1", 3), 1);
      await symlink("..v2", join(dir, "..data_tmp"));
      await rename(join(dir, "..data_tmp"), join(dir, "..data"));
      await proc.waitFor(() => proc.count("config reloaded") === 1, "reloaded by watch");
      assert.equal(await servedFrom(port, "127.0.14.2", 4), 2);
      proc.child.kill("SIGINT");
      assert.equal(await proc.exit(), 0);
    } finally {
      proc.child.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("Gateway.reload applies new limits to the next connection and keeps open ones", async () => {
    const gw = await startGateway(await connectDoc({ guard: { max_connections_per_ip: 1 } }));
    try {
      const held = await probe(gw.port, "127.0.15.1");
      assert.equal(held.served, true);
      const next = configOf(await connectDoc({ guard: { max_connections_per_ip: 2 } }));
      await gw.gateway.reload(next);
      assert.equal(held.client.closed, false, "open connection survives the reload");
      const second = await probe(gw.port, "127.0.15.1");
      assert.equal(second.served, true, "new limit, and the held connection still counts");
      const third = await probe(gw.port, "127.0.15.1");
      assert.equal(third.served, false);
      for (const p of [held, second, third]) p.client.destroy();
      assert.deepEqual(gw.gateway.bound().map((b) => b.port), [gw.port], "same listener, same socket");
    } finally {
      await gw.stop();
    }
  });
});
