/**
 * The fixed window's FIFO queue through a real node:http server: requests
 * over the window wait, in order, up to queue_limit, and proceed when the
 * window opens (driven by the ManualClock); a client that disconnects while
 * queued leaves the queue and its place goes to the next one.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { after, test } from "node:test";
import { ManualClock } from "../../../src/core/clock.js";
import { HttpLimiter, withRateLimit } from "../../../src/features/http/index.js";
import { close, listen, parseRateLimit, recordingLogger, request, startRequest } from "./helpers.js";
import { waitUntil } from "../../helpers/wait.js";

const servers: http.Server[] = [];
after(async () => {
  await Promise.all(servers.map(close));
});

async function queuedServer(permitLimit: number, queueLimit: number) {
  const clock = new ManualClock(0);
  const logger = recordingLogger();
  const queuedHook: string[] = [];
  const limiter = new HttpLimiter({
    clock,
    logger,
    hooks: { onQueued: (route, limiter) => queuedHook.push(`${route}/${limiter}`) },
    routes: [{ name: "authorize", match: "/authorize", limit: { algorithm: "fixed_window", permitLimit, windowMs: 60_000, queueLimit } }],
  });
  const served: string[] = [];
  const server = http.createServer(
    withRateLimit(limiter, (req, res) => {
      served.push(String(req.headers["x-n"]));
      res.end("ok");
    }),
  );
  servers.push(server);
  const port = await listen(server);
  const send = (n: string) => startRequest(port, { path: "/authorize", headers: { "x-n": n } });
  return { clock, limiter, logger, served, port, send, queuedHook };
}

test("queued requests proceed in arrival order when the window opens", async () => {
  const s = await queuedServer(2, 3);
  assert.equal((await request(s.port, { path: "/authorize", headers: { "x-n": "a" } })).status, 200);
  assert.equal((await request(s.port, { path: "/authorize", headers: { "x-n": "b" } })).status, 200);
  const waiting = [];
  for (const n of ["c", "d", "e"]) {
    waiting.push(s.send(n));
    await waitUntil(() => s.limiter.queued === waiting.length, { timeoutMs: 5_000, message: `${n} to queue` });
  }
  assert.deepEqual(s.served, ["a", "b"], "nobody is served while the window is full");
  assert.equal(s.queuedHook.length, 3);
  const queuedLogs = s.logger.entries.filter((e) => e.msg === "request queued");
  assert.equal(queuedLogs.length, 3);
  assert.deepEqual(Object.keys(queuedLogs[0]!.fields).sort(), ["client_id", "endpoint", "limiter", "method", "path", "remote_ip"]);
  s.clock.set(60_000);
  const [c, d] = await Promise.all([waiting[0]!.reply, waiting[1]!.reply]);
  assert.equal(c.status, 200);
  assert.equal(d.status, 200);
  assert.deepEqual(s.served, ["a", "b", "c", "d"]);
  assert.equal(s.limiter.queued, 1, "e waits for the window after");
  // The admitted request's headers describe the window it was admitted to.
  assert.deepEqual(parseRateLimit(c.headers["ratelimit"]), [{ name: "authorize", params: { r: 1, t: 60 } }]);
  s.clock.set(120_000);
  assert.equal((await waiting[2]!.reply).status, 200);
  assert.deepEqual(s.served, ["a", "b", "c", "d", "e"]);
});

test("queue_limit bounds the queue: the next request is rejected at once with a Retry-After past the queue", async () => {
  const s = await queuedServer(2, 3);
  await request(s.port, { path: "/authorize" });
  await request(s.port, { path: "/authorize" });
  const waiting = [];
  for (const n of ["c", "d", "e"]) {
    waiting.push(s.send(n));
    await waitUntil(() => s.limiter.queued === waiting.length, { timeoutMs: 5_000, message: `${n} to queue` });
  }
  const full = await request(s.port, { path: "/authorize", headers: { "x-n": "f" } });
  assert.equal(full.status, 429);
  // Three wait ahead with two permits a window: when the next window opens two
  // of them pass, and the queue has room for f again.
  assert.equal(full.headers["retry-after"], "60");
  const [item] = parseRateLimit(full.headers["ratelimit"]);
  assert.ok(Number(full.headers["retry-after"]) >= (item!.params.t as number));
  assert.equal(s.logger.entries.find((e) => e.level === "warn")?.fields.reason, "queue_full");
  s.clock.set(60_000);
  s.clock.set(120_000);
  const replies = await Promise.all(waiting.map((w) => w.reply));
  assert.deepEqual(
    replies.map((r) => r.status),
    [200, 200, 200],
  );
  assert.ok(!s.served.includes("f"));
});

test("a client that disconnects while queued leaves the queue; its place goes to the next", async () => {
  const s = await queuedServer(1, 2);
  await request(s.port, { path: "/authorize", headers: { "x-n": "a" } });
  const b = s.send("b");
  await waitUntil(() => s.limiter.queued === 1, { timeoutMs: 5_000, message: "b to queue" });
  const c = s.send("c");
  await waitUntil(() => s.limiter.queued === 2, { timeoutMs: 5_000, message: "c to queue" });
  b.reply.catch(() => undefined);
  b.req.destroy();
  await waitUntil(() => s.limiter.queued === 1, { timeoutMs: 5_000, message: "b to leave the queue" });
  assert.ok(s.logger.entries.some((e) => e.msg === "queued request left the queue" && e.fields.endpoint === "authorize"));
  // The freed place takes a new waiter (the queue holds 2: c and d).
  const d = s.send("d");
  await waitUntil(() => s.limiter.queued === 2, { timeoutMs: 5_000, message: "d to queue" });
  s.clock.set(60_000);
  assert.equal((await c.reply).status, 200);
  s.clock.set(120_000);
  assert.equal((await d.reply).status, 200);
  assert.deepEqual(s.served, ["a", "c", "d"], "b never reached the handler");
});
