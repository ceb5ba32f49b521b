/**
 * Two servers, each with its own guard and its own RedisStore on one Redis
 * (as two processes would have): the per-address cap counts across both, a
 * slot freed on one admits on the other, and a ban placed through one guard
 * cuts the address's live connection on the other server.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { type AddressInfo, type Server, type Socket, connect, createServer } from "node:net";
import { type ConnectionOptions, connect as tlsConnect, createServer as createTlsServer } from "node:tls";
import { makeTestPki } from "../helpers/certs.js";
import { after, test } from "node:test";
import { RedisStore } from "../../src/redis.js";
import { type ServerGuard, createServerGuard } from "../../src/server-guard/index.js";
import { REDIS_URL, deletePrefix, uniquePrefix } from "../redis/helpers.js";
import { waitUntil } from "../helpers/wait.js";

const prefix = uniquePrefix("server-guard");
const stores: RedisStore[] = [];
const servers: Server[] = [];
const guards: ServerGuard[] = [];

after(async () => {
  guards.forEach((g) => g.close());
  servers.forEach((s) => s.close());
  await Promise.all(stores.map((s) => s.close()));
  await deletePrefix(prefix);
});

async function node(): Promise<{ guard: ServerGuard; port: number }> {
  const store = new RedisStore({ url: REDIS_URL, prefix, timeoutMs: 2000 });
  stores.push(store);
  assert.ok(await store.ready(5000), `redis at ${REDIS_URL} did not answer`);
  const guard = createServerGuard({ store, maxConnectionsPerIp: 1 });
  guards.push(guard);
  assert.ok(await guard.start(5000));
  const server = createServer((s) => {
    s.on("error", () => {});
    s.write("hi\n");
  });
  servers.push(server);
  guard.protect(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { guard, port: (server.address() as AddressInfo).port };
}

function outcome(s: Socket): Promise<"admitted" | "refused"> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no answer")), 5000);
    s.once("data", () => (clearTimeout(t), resolve("admitted")));
    s.once("close", () => (clearTimeout(t), resolve("refused")));
    s.on("error", () => {});
  });
}

const from = (port: number, localAddress: string): Socket => connect({ host: "127.0.0.1", port, localAddress });

test("the per-address cap and bans hold across two servers sharing a Redis store", async () => {
  const a = await node();
  const b = await node();
  const first = from(a.port, "127.0.0.40");
  assert.equal(await outcome(first), "admitted");
  assert.equal(await outcome(from(b.port, "127.0.0.40")), "refused", "the other server sees the slot taken");
  first.destroy();
  await waitUntil(() => a.guard.size === 0, { timeoutMs: 5000, message: "the release on the first server" });
  let held: Socket | undefined;
  await waitUntil(async () => {
      held?.destroy();
      held = from(b.port, "127.0.0.40");
      return (await outcome(held)) === "admitted";
    }, { timeoutMs: 5000, message: "a slot on the second server" });
  await a.guard.ban("127.0.0.40", 60_000);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("the live connection on the other server was not cut")), 5000);
    held!.once("close", () => (clearTimeout(t), resolve()));
  });
  assert.equal(await outcome(from(b.port, "127.0.0.40")), "refused");
  const other = from(a.port, "127.0.0.41");
  assert.equal(await outcome(other), "admitted", "another address is not affected");
  other.destroy();
});

test("a tls.Server on the shared store: the handshake completes after the asynchronous admission (the ClientHello waits, not lost)", async () => {
  const pki = await makeTestPki();
  const store = new RedisStore({ url: REDIS_URL, prefix, timeoutMs: 2000 });
  stores.push(store);
  assert.ok(await store.ready(5000));
  const guard = createServerGuard({ store, maxConnectionsPerIp: 1 });
  guards.push(guard);
  await guard.start(5000);
  const server = createTlsServer({ cert: pki.serverCert, key: pki.serverKey }, (s) => {
    s.on("error", () => {});
    s.end("hi\n");
  });
  servers.push(server);
  guard.protect(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  for (let i = 0; i < 3; i++) {
    const c = tlsConnect({ host: "127.0.0.1", port, localAddress: "127.0.0.42", ca: pki.caCert, servername: "localhost" } as ConnectionOptions);
    assert.equal(await outcome(c), "admitted");
    c.destroy();
    await waitUntil(() => guard.size === 0, { timeoutMs: 5000, message: "the release" });
  }
});
