/**
 * Relayed bytes are counted while a connection is open, not only when it
 * closes: through a real `portcullis run`, a long tunnel's bytes show in
 * /metrics while it is still open, and the total after its close is exactly
 * what it relayed (nothing counted twice).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GatewayProcess } from "../helpers/gateway-process.js";
import { withTimeout } from "../gateway/fixtures.js";
import { sample } from "./fixtures.js";
import { sleep } from "../helpers/wait.js";
import { freePort } from "../helpers/free-port.js";

const TOKEN = "relayed-bytes-token-0123456789";
const SENT = 300_000;

let dir: string;
let echo: net.Server;
let gw: GatewayProcess;
let port: number;
let adminPort: number;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "portcullis-bytes-"));
  echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
  adminPort = await freePort();
  const file = join(dir, "gateway.toml");
  await writeFile(
    file,
    [
      "[log]",
      'format = "logfmt"',
      "[[listener]]",
      'name = "fwd"',
      'kind = "tcp"',
      'bind = "127.0.0.1:0"',
      `upstream = "127.0.0.1:${(echo.address() as net.AddressInfo).port}"`,
      "[admin]",
      "enabled = true",
      `bind = "127.0.0.1:${adminPort}"`,
      `token = "${TOKEN}"`,
      "",
    ].join("\n"),
  );
  gw = new GatewayProcess(file);
  await gw.waitFor(() => /listener fwd \(tcp\) up on 127\.0\.0\.1:\d+/.test(gw.stderr), "listener up", 30_000);
  await gw.waitFor(() => gw.stderr.includes("admin listener up"), "admin listener up", 30_000);
  port = Number(/up on 127\.0\.0\.1:(\d+)/.exec(gw.stderr)![1]);
});

after(async () => {
  gw?.child.kill("SIGTERM");
  await gw?.exit();
  echo?.close();
  await rm(dir, { recursive: true, force: true });
});

async function relayed(direction: "in" | "out"): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(5000) });
  return sample(await res.text(), "portcullis_relayed_bytes_total", { listener: "fwd", direction });
}

test("an open tunnel's bytes reach /metrics within a few seconds, and its close adds only the rest", async () => {
  assert.equal(await relayed("in"), 0);
  const c = net.connect({ port, host: "127.0.0.1" });
  let echoed = 0;
  c.on("data", (d: Buffer) => (echoed += d.length));
  try {
    await withTimeout(new Promise<void>((r, j) => c.once("connect", r).once("error", j)), 5000, "connect");
    c.write(Buffer.alloc(SENT, 7));
    await withTimeout(
      new Promise<void>((r) => {
        const check = (): void => (echoed >= SENT ? r() : void setTimeout(check, 10));
        check();
      }),
      10_000,
      "echo",
    );
    // The tunnel stays open: the counts must show without its close (reports come every 2 s; allow a loaded machine 15 s).
    let seen = { in: 0, out: 0 };
    await withTimeout(
      (async () => {
        for (;;) {
          seen = { in: await relayed("in"), out: await relayed("out") };
          if (seen.in >= SENT && seen.out >= SENT) return;
          await sleep(200);
        }
      })(),
      15_000,
      "bytes of the open tunnel in /metrics",
    );
    assert.equal(c.destroyed, false, "the tunnel is still open");
    assert.deepEqual(seen, { in: SENT, out: SENT });
  } finally {
    c.end();
  }
  await gw.waitFor(() => gw.count(" event=conn_close ") >= 1, "conn_close");
  // More after the report: exactly what the close adds, never the whole again.
  const c2 = net.connect({ port, host: "127.0.0.1" });
  await withTimeout(new Promise<void>((r, j) => c2.once("connect", r).once("error", j)), 5000, "connect");
  let echoed2 = 0;
  c2.on("data", (d: Buffer) => (echoed2 += d.length));
  c2.write(Buffer.alloc(1000, 1));
  await withTimeout(
    new Promise<void>((r) => {
      const check = (): void => (echoed2 >= 1000 ? r() : void setTimeout(check, 10));
      check();
    }),
    10_000,
    "echo 2",
  );
  c2.end();
  await gw.waitFor(() => gw.count(" event=conn_close ") >= 2, "second conn_close");
  await withTimeout(
    (async () => {
      while ((await relayed("out")) < SENT + 1000) await sleep(100);
    })(),
    10_000,
    "total after close",
  );
  assert.equal(await relayed("in"), SENT + 1000);
  assert.equal(await relayed("out"), SENT + 1000);
});
