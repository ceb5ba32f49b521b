/**
 * The same rules through Express 5, Express 4 and Fastify over real HTTP:
 * limits with headers and problem documents, queueing (with a client that
 * leaves), lockout fed by response status with form bodies, and routes
 * matched on the full path when the middleware is mounted under a prefix.
 */
import assert from "node:assert/strict";
import type http from "node:http";
import { createRequire } from "node:module";
import { after, describe, test } from "node:test";
import express from "express";
import Fastify, { type FastifyInstance } from "fastify";
import { ManualClock } from "../../../src/core/clock.js";
import { HttpLimiter, type HttpLimiterOptions, expressRateLimit, fastifyRateLimit } from "../../../src/features/http/index.js";
import { close, parseRateLimit, request, startRequest } from "./helpers.js";
import { waitUntil } from "../../helpers/wait.js";

const express4 = createRequire(import.meta.url)("express4") as typeof express;
const closers: (() => Promise<void>)[] = [];
after(async () => {
  await Promise.all(closers.map((c) => c()));
});

const rules = (clock: ManualClock): HttpLimiterOptions => ({
  clock,
  lockout: { maxFailures: 2, windowMs: 60_000, durationMs: 600_000 },
  routes: [
    { name: "token", match: "/oauth/token", limit: { algorithm: "fixed_window", permitLimit: 2, windowMs: 60_000, key: "client_id" } },
    { name: "authorize", match: "/oauth/authorize", limit: { algorithm: "fixed_window", permitLimit: 1, windowMs: 60_000, queueLimit: 2 } },
    { name: "login", match: "/oauth/login", methods: ["POST"], limit: { algorithm: "fixed_window", permitLimit: 50, windowMs: 60_000 }, lockout: { subject: "user" } },
  ],
});

interface App {
  port: number;
  clock: ManualClock;
  limiter: HttpLimiter;
  served: string[];
}

function expressApp(make: typeof express, parseFirst: boolean): () => Promise<App> {
  return async () => {
    const clock = new ManualClock(0);
    const app = make();
    const served: string[] = [];
    // A JSON parser first sets req.body = {} on the form requests it skips; the form must still be read.
    app.use(make.json());
    if (parseFirst) app.use(make.urlencoded({ extended: false }));
    const mw = expressRateLimit(rules(clock));
    // Mounted under a prefix: the patterns match the full path (req.originalUrl), as in every other adapter.
    app.use("/oauth", mw);
    app.use("/oauth", (req, res) => {
      served.push(String(req.headers["x-n"] ?? ""));
      if (req.path === "/login") {
        const body = (req.body ?? {}) as Record<string, string>;
        res.status(body.password === "right" ? 200 : 401).send("login");
        return;
      }
      res.send("ok");
    });
    const server: http.Server = app.listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    closers.push(() => close(server));
    return { port: (server.address() as { port: number }).port, clock, limiter: mw.limiter, served };
  };
}

async function fastifyApp(): Promise<App> {
  const clock = new ManualClock(0);
  const app: FastifyInstance = Fastify();
  const served: string[] = [];
  const limiter = new HttpLimiter(rules(clock));
  await app.register(fastifyRateLimit, { limiter });
  assert.equal(app.portcullis, limiter, "the plugin decorates the instance with its limiter");
  app.all("/oauth/*", async (req, reply) => {
    served.push(String(req.headers["x-n"] ?? ""));
    if (req.url === "/oauth/login") {
      const body = (req.body ?? {}) as Record<string, string>;
      return reply.code(body.password === "right" ? 200 : 401).send("login");
    }
    return "ok";
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  closers.push(() => app.close());
  return { port: (app.server.address() as { port: number }).port, clock, limiter, served };
}

const frameworks: [string, () => Promise<App>][] = [
  ["Express 5", expressApp(express, true)],
  ["Express 5 with only a JSON parser", expressApp(express, false)],
  ["Express 4", expressApp(express4, true)],
  ["Express 4 with only a JSON parser", expressApp(express4, false)],
  ["Fastify", fastifyApp],
];

for (const [name, make] of frameworks) {
  describe(name, () => {
    test("limits with RateLimit headers, Retry-After and a problem document", async () => {
      const a = await make();
      const get = (q: string) => request(a.port, { path: `/oauth/token?client_id=${q}` });
      const first = await get("app1");
      assert.equal(first.status, 200);
      assert.equal(first.body, "ok");
      assert.deepEqual(parseRateLimit(first.headers["ratelimit-policy"]), [{ name: "token", params: { q: 2, w: 60 } }]);
      assert.deepEqual(parseRateLimit(first.headers["ratelimit"]), [{ name: "token", params: { r: 1, t: 60 } }]);
      assert.equal((await get("app1")).status, 200);
      a.clock.set(45_500);
      const r = await get("app1");
      assert.equal(r.status, 429);
      assert.equal(r.headers["retry-after"], "15");
      assert.match(String(r.headers["content-type"]), /^application\/problem\+json/);
      assert.deepEqual(JSON.parse(r.body)["violated-policies"], ["token"]);
      assert.equal((await get("app2")).status, 200, "another client id has its own budget");
      assert.equal((await request(a.port, { path: "/oauth/other" })).headers["ratelimit"], undefined);
    });

    test("a queued request proceeds when the window opens; one that disconnects leaves the queue", async () => {
      const a = await make();
      assert.equal((await request(a.port, { path: "/oauth/authorize", headers: { "x-n": "1" } })).status, 200);
      const gone = startRequest(a.port, { path: "/oauth/authorize", headers: { "x-n": "2" } });
      await waitUntil(() => a.limiter.queued === 1, { timeoutMs: 5_000, message: "the request to queue" });
      gone.reply.catch(() => undefined);
      gone.req.destroy();
      await waitUntil(() => a.limiter.queued === 0, { timeoutMs: 5_000, message: "the client to leave the queue" });
      const waiting = startRequest(a.port, { path: "/oauth/authorize", headers: { "x-n": "3" } });
      await waitUntil(() => a.limiter.queued === 1, { timeoutMs: 5_000, message: "the next request to queue" });
      a.clock.set(60_000);
      const r = await waiting.reply;
      assert.equal(r.status, 200);
      assert.deepEqual(a.served, ["1", "3"]);
    });

    test("failed logins lock the subject across IPs (form body, lockout by status)", async () => {
      const a = await make();
      const login = (password: string, from: string) =>
        request(a.port, {
          method: "POST",
          path: "/oauth/login",
          from,
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: `username=alice&password=${password}`,
        });
      assert.equal((await login("wrong", "127.0.0.2")).status, 401);
      assert.equal((await login("wrong", "127.0.0.3")).status, 401);
      const locked = await login("right", "127.0.0.4");
      assert.equal(locked.status, 429);
      assert.equal(locked.headers["retry-after"], "600");
      a.clock.set(600_000);
      assert.equal((await login("right", "127.0.0.4")).status, 200);
    });
  });
}
