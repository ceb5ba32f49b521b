/**
 * A tcp listener relays through read pumps: every read lands in a buffer
 * the gateway owns and is written straight on. These tests drive it with
 * receivers slow enough that writes stay pending (the case where a reused
 * buffer could be overwritten before it is sent) and check every byte.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import { rm } from "node:fs/promises";
import { makeTestPki } from "../helpers/certs.js";
import { connectDoc, connectHead, startGateway, withTimeout } from "./fixtures.js";
import { sleep } from "../helpers/wait.js";

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

/** Reads `s` to its end, pausing for `pauseMs` after every `everyBytes`, and resolves with the digest and length. */
function slowDigest(s: net.Socket, everyBytes: number, pauseMs: number): Promise<{ digest: string; length: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash("sha256");
    let length = 0;
    let sincePause = 0;
    s.on("data", (d: Buffer) => {
      h.update(d);
      length += d.length;
      sincePause += d.length;
      if (sincePause >= everyBytes) {
        sincePause = 0;
        s.pause();
        setTimeout(() => s.resume(), pauseMs);
      }
    });
    s.once("end", () => resolve({ digest: h.digest("hex"), length }));
    s.once("error", reject);
  });
}

function tcpDoc(upstreamPort: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { log: { format: "json" }, listener: [{ name: "relay", kind: "tcp", bind: "127.0.0.1:0", upstream: `127.0.0.1:${upstreamPort}`, ...extra }] };
}

/** An upstream that sends `down` and digests, slowly, what it receives. */
async function slowUpstream(down: Buffer): Promise<{ server: net.Server; port: number; got: () => Promise<{ digest: string; length: number }> }> {
  let got: Promise<{ digest: string; length: number }> | undefined;
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    got = slowDigest(s, 1024 * 1024, 3);
    s.end(down);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    server,
    port,
    got: async () => {
      for (let i = 0; i < 500 && got === undefined; i++) await sleep(10);
      return got!;
    },
  };
}

/**
 * Sends `up` on `c` (then ends it) while reading, slowly, what comes back,
 * and checks both copies: the client's against `down`, the upstream's against `up`.
 */
async function exchangeSlowly(c: net.Socket, origin: { got: () => Promise<{ digest: string; length: number }> }, up: Buffer, down: Buffer): Promise<void> {
  const clientGot = slowDigest(c, 1024 * 1024, 3);
  c.resume();
  c.end(up);
  assert.deepEqual(await withTimeout(clientGot, 45_000, "the client's copy"), { digest: sha(down), length: down.length });
  assert.deepEqual(await withTimeout(origin.got(), 45_000, "the upstream's copy"), { digest: sha(up), length: up.length });
}

describe("tcp relay through read pumps", () => {
  test("24 MiB each way arrive intact while both receivers read slowly", { timeout: 60_000 }, async () => {
    const up = randomBytes(24 * 1024 * 1024);
    const down = randomBytes(24 * 1024 * 1024);
    const origin = await slowUpstream(down);
    const gw = await startGateway(tcpDoc(origin.port));
    try {
      const c = net.connect({ port: gw.port, host: "127.0.0.1", allowHalfOpen: true });
      await exchangeSlowly(c, origin, up, down);
      c.destroy();
      // A bulk stream read into the pool's 64 KiB buffers, and gave them back when it closed.
      const pool = gw.gateway["ctx"].readBuffers;
      for (let i = 0; i < 100 && pool.idle === 0; i++) await sleep(10);
      assert.ok(pool.idle >= 1, `64 KiB buffers back in the pool: ${pool.idle}`);
    } finally {
      await gw.stop();
      origin.server.close();
    }
  });

  test("TLS terminated at the listener: 8 MiB each way intact, the upstream's pump writing into the TLS socket", { timeout: 60_000 }, async () => {
    const pki = await makeTestPki();
    const up = randomBytes(8 * 1024 * 1024);
    const down = randomBytes(8 * 1024 * 1024);
    const origin = await slowUpstream(down);
    const gw = await startGateway(tcpDoc(origin.port, { tls: { cert: pki.serverCertPath, key: pki.serverKeyPath } }));
    try {
      const c = tls.connect({ port: gw.port, host: "127.0.0.1", servername: "localhost", ca: pki.caCert, allowHalfOpen: true } as tls.ConnectionOptions);
      await withTimeout(new Promise((r) => c.once("secureConnect", r)), 5000, "tls");
      await exchangeSlowly(c, origin, up, down);
      c.destroy();
    } finally {
      await gw.stop();
      origin.server.close();
      await rm(pki.dir, { recursive: true, force: true });
    }
  });

  test("a CONNECT tunnel: 8 MiB each way intact through the upstream's pump and the client's piped side", { timeout: 60_000 }, async () => {
    const up = randomBytes(8 * 1024 * 1024);
    const down = randomBytes(8 * 1024 * 1024);
    const origin = await slowUpstream(down);
    const gw = await startGateway(await connectDoc());
    try {
      const c = net.connect({ port: gw.port, host: "127.0.0.1", allowHalfOpen: true });
      c.write(connectHead(`127.0.0.1:${origin.port}`, { user: "alice", password: "s3cret" }));
      // The answer head, then the tunnel's bytes.
      const head = await withTimeout(
        new Promise<Buffer>((resolve) => {
          let acc = Buffer.alloc(0);
          const onData = (d: Buffer): void => {
            acc = Buffer.concat([acc, d]);
            const end = acc.indexOf("\r\n\r\n");
            if (end < 0) return;
            c.removeListener("data", onData);
            c.pause();
            const rest = acc.subarray(end + 4);
            if (rest.length > 0) c.unshift(rest);
            resolve(acc.subarray(0, end));
          };
          c.on("data", onData);
        }),
        10_000,
        "CONNECT answer",
      );
      assert.match(head.toString("latin1"), /^HTTP\/1\.1 200/);
      await exchangeSlowly(c, origin, up, down);
      c.destroy();
    } finally {
      await gw.stop();
      origin.server.close();
    }
  });

  test("short and bulk reads mixed, to receivers that keep pausing: every byte arrives in order", { timeout: 60_000 }, async () => {
    // Short reads land in the shared buffer and must be copied out; bulk reads use the socket's own
    // buffer and must not be read into again while a write still holds it. This mix exercises both.
    const pieces: Buffer[] = [];
    for (let i = 0; i < 400; i++) pieces.push(randomBytes(i % 2 === 0 ? 1 + ((i * 977) % 12_000) : 48 * 1024 + ((i * 7919) % 150_000)));
    const all = Buffer.concat(pieces);
    const send = async (s: net.Socket): Promise<void> => {
      for (const [i, p] of pieces.entries()) {
        if (!s.write(p)) await new Promise((r) => s.once("drain", r));
        // Gaps between writes keep reads short now and then.
        if (i % 3 === 0) await sleep(1);
      }
      s.end();
    };
    let upstreamGot: Promise<{ digest: string; length: number }> | undefined;
    const upstream = net.createServer({ allowHalfOpen: true }, (s) => {
      upstreamGot = slowDigest(s, 128 * 1024, 5);
      void send(s);
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const gw = await startGateway(tcpDoc((upstream.address() as net.AddressInfo).port));
    try {
      const c = net.connect({ port: gw.port, host: "127.0.0.1", allowHalfOpen: true });
      const clientGot = slowDigest(c, 128 * 1024, 5);
      await new Promise((r) => c.once("connect", r));
      void send(c);
      assert.deepEqual(await withTimeout(clientGot, 45_000, "the client's copy"), { digest: sha(all), length: all.length });
      for (let i = 0; i < 500 && upstreamGot === undefined; i++) await sleep(10);
      assert.deepEqual(await withTimeout(upstreamGot!, 45_000, "the upstream's copy"), { digest: sha(all), length: all.length });
      c.destroy();
    } finally {
      await gw.stop();
      upstream.close();
    }
  });

  test("many small exchanges keep their order and content", { timeout: 30_000 }, async () => {
    const upstream = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on("data", (d: Buffer) => s.write(Buffer.from(d.toString("utf8").toUpperCase())));
      s.on("end", () => s.end());
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const gw = await startGateway(tcpDoc((upstream.address() as net.AddressInfo).port));
    try {
      const c = net.connect({ port: gw.port, host: "127.0.0.1", allowHalfOpen: true });
      let got = "";
      c.on("data", (d: Buffer) => (got += d.toString("utf8")));
      const ended = new Promise<void>((r) => c.once("end", r));
      let want = "";
      for (let i = 0; i < 200; i++) {
        const line = `line-${i}-${"x".repeat(i % 37)};`;
        want += line.toUpperCase();
        c.write(line);
        if (i % 20 === 0) await new Promise((r) => setImmediate(r));
      }
      c.end();
      await withTimeout(ended, 20_000, "the upstream's end");
      assert.equal(got, want);
      c.destroy();
    } finally {
      await gw.stop();
      upstream.close();
    }
  });
});
