/**
 * The one-line middleware `rateLimit({ windowMs, limit, ... })` with
 * express-rate-limit's option names, on Express 5, Express 4 and node:http
 * over real HTTP (Node's client from chosen loopback addresses, and fetch).
 * Windows move on an injected manual clock. The option-mapping cases of
 * docs/http.md each have a test here; the shared-store case runs on Redis.
 */
import assert from "node:assert/strict";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { after, describe, test } from "node:test";
import express from "express";
import { ManualClock } from "../../../src/core/clock.js";
import { type RateLimitMiddleware, type RateLimitOptions, rateLimit } from "../../../src/features/http/index.js";
import { RedisStore } from "../../../src/stores/redis/redis-store.js";
import { REDIS_URL, deletePrefix, uniquePrefix } from "../../redis/helpers.js";
import { type Reply, close, listen, parseRateLimit, recordingLogger, request, startRequest } from "./helpers.js";
import { waitUntil } from "../../helpers/wait.js";

const express4 = createRequire(import.meta.url)("express4") as typeof express;
const closers: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of closers) await c();
});

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** Answers 200 with the request's `rateLimit` property, or 401 for a login with the wrong password. */
const app: Handler = (req, res) => {
  const body = (req as { body?: Record<string, string> }).body;
  if (req.url?.startsWith("/login")) {
    res.statusCode = body?.password === "right" ? 200 : 401;
    res.end("login");
    return;
  }
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify((req as { rateLimit?: unknown }).rateLimit ?? null));
};

interface Framework {
  name: string;
  serve(mw: RateLimitMiddleware): Promise<number>;
}

function expressFramework(name: string, make: typeof express): Framework {
  return {
    name,
    async serve(mw) {
      const a = make();
      a.use(make.urlencoded({ extended: false }));
      a.use(mw);
      a.use((req, res) => app(req, res));
      const server = http.createServer(a);
      const port = await listen(server);
      closers.push(() => close(server));
      return port;
    },
  };
}

const nodeFramework: Framework = {
  name: "node:http",
  async serve(mw) {
    const server = http.createServer((req, res) =>
      mw(req, res, (err) => {
        if (err !== undefined) {
          res.statusCode = 500;
          res.end();
          return;
        }
        app(req, res);
      }),
    );
    const port = await listen(server);
    closers.push(() => close(server));
    return port;
  },
};

const frameworks = [expressFramework("Express 5", express), expressFramework("Express 4", express4), nodeFramework];

/** A middleware on a manual clock, disposed at the end. */
function limit(o: RateLimitOptions, clock = new ManualClock(0)): RateLimitMiddleware {
  const mw = rateLimit({ clock, ...o });
  closers.push(() => mw.dispose());
  return mw;
}

async function statuses(port: number, n: number, o: Parameters<typeof request>[1] = {}): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await request(port, o)).status);
  return out;
}

function item(r: Reply, header: string) {
  const items = parseRateLimit(r.headers[header]);
  assert.equal(items.length, 1, `${header} has one policy`);
  return items[0]!;
}

for (const fw of frameworks) {
  describe(`rateLimit on ${fw.name}`, () => {
    test("the limit+1st request in a window gets 429 with Retry-After, the draft-8 headers and a problem document; the next window admits again", async () => {
      const clock = new ManualClock(0);
      const port = await fw.serve(limit({ windowMs: 60_000, limit: 2 }, clock));
      const first = await request(port);
      assert.equal(first.status, 200);
      assert.deepEqual(item(first, "ratelimit-policy"), { name: "2-in-1min", params: { q: 2, w: 60 } });
      assert.deepEqual(item(first, "ratelimit"), { name: "2-in-1min", params: { r: 1, t: 60 } });
      assert.equal(first.headers["x-ratelimit-limit"], undefined, "legacyHeaders is off by default");
      assert.equal((await request(port)).status, 200);
      clock.advance(15_000);
      const refused = await request(port);
      assert.equal(refused.status, 429);
      assert.equal(refused.headers["retry-after"], "45");
      assert.deepEqual(item(refused, "ratelimit"), { name: "2-in-1min", params: { r: 0, t: 45 } });
      assert.match(String(refused.headers["content-type"]), /^application\/problem\+json/);
      assert.deepEqual(JSON.parse(refused.body)["violated-policies"], ["2-in-1min"]);
      // Another client address has its own count.
      assert.equal((await request(port, { from: "127.0.0.2" })).status, 200);
      clock.advance(45_000);
      assert.equal((await request(port)).status, 200, "a new window admits again");
    });

    test("keyGenerator: requests are counted by the key it returns (also when it returns a promise)", async () => {
      const port = await fw.serve(limit({ limit: 1, keyGenerator: async (req) => String(req.headers["x-api-key"] ?? "anonymous") }));
      assert.equal((await request(port, { headers: { "x-api-key": "a" } })).status, 200);
      assert.equal((await request(port, { headers: { "x-api-key": "a" }, from: "127.0.0.2" })).status, 429, "the same key from another address shares the count");
      const b = await request(port, { headers: { "x-api-key": "b" } });
      assert.equal(b.status, 200, "another key from the same address has its own count");
      assert.equal(JSON.parse(b.body).key, "b", "req.rateLimit carries the key");
    });

    test("skip: skipped requests are neither counted nor refused", async () => {
      const port = await fw.serve(limit({ limit: 1, skip: (req) => req.headers["x-internal"] === "1" }));
      assert.deepEqual(await statuses(port, 3, { headers: { "x-internal": "1" } }), [200, 200, 200]);
      assert.deepEqual(await statuses(port, 2), [200, 429], "the skipped requests did not use the quota");
    });

    test("handler, statusCode and message: the refusal is the application's, with the rate-limit headers already set", async () => {
      const handled = await fw.serve(
        limit({
          limit: 1,
          handler: (_req, res, _next, options) => {
            res.statusCode = 503;
            res.setHeader("content-type", "application/json");
            res.end(JSON.stringify({ busy: true, limit: options.limit, status: options.statusCode }));
          },
        }),
      );
      await request(handled);
      const h = await request(handled);
      assert.equal(h.status, 503);
      assert.deepEqual(JSON.parse(h.body), { busy: true, limit: 1, status: 429 });
      assert.ok(h.headers["retry-after"] !== undefined && h.headers["ratelimit"] !== undefined, "headers set before the handler");

      const texted = await fw.serve(limit({ limit: 1, statusCode: 503, message: "Too many requests, please try again later." }));
      await request(texted);
      const t = await request(texted);
      assert.equal(t.status, 503);
      assert.equal(t.body, "Too many requests, please try again later.");

      const problem = await fw.serve(limit({ limit: 1, statusCode: 503 }));
      await request(problem);
      const p = await request(problem);
      assert.equal(p.status, 503);
      assert.equal(JSON.parse(p.body).status, 503, "the problem document states the status sent");

      const objected = await fw.serve(limit({ limit: 1, message: (req: IncomingMessage) => ({ error: "rate_limited", path: req.url }) }));
      await request(objected);
      const o = await request(objected, { path: "/x" });
      assert.equal(o.status, 429);
      assert.match(String(o.headers["content-type"]), /^application\/json/);
      assert.deepEqual(JSON.parse(o.body), { error: "rate_limited", path: "/x" });
    });

    test("standardHeaders draft-6 / true, draft-7, false; legacyHeaders X-RateLimit-* with the reset in epoch seconds", async () => {
      const clock = new ManualClock(0);
      const d6 = await request(await fw.serve(limit({ windowMs: 60_000, limit: 5, standardHeaders: "draft-6" }, clock)));
      assert.equal(d6.headers["ratelimit-policy"], "5;w=60");
      assert.deepEqual([d6.headers["ratelimit-limit"], d6.headers["ratelimit-remaining"], d6.headers["ratelimit-reset"]], ["5", "4", "60"]);
      assert.equal(d6.headers["ratelimit"], undefined);
      const t6 = await request(await fw.serve(limit({ windowMs: 60_000, limit: 5, standardHeaders: true }, clock)));
      assert.equal(t6.headers["ratelimit-limit"], "5", "true means draft-6, as in express-rate-limit");

      const d7 = await request(await fw.serve(limit({ windowMs: 60_000, limit: 5, standardHeaders: "draft-7" }, clock)));
      assert.equal(d7.headers["ratelimit-policy"], "5;w=60");
      assert.equal(d7.headers["ratelimit"], "limit=5, remaining=4, reset=60");
      assert.equal(d7.headers["ratelimit-limit"], undefined);

      const none = await request(await fw.serve(limit({ limit: 5, standardHeaders: false }, clock)));
      assert.equal(none.status, 200);
      for (const h of ["ratelimit", "ratelimit-policy", "ratelimit-limit", "x-ratelimit-limit"]) assert.equal(none.headers[h], undefined, h);

      const legacy = await fw.serve(limit({ windowMs: 60_000, limit: 1, standardHeaders: false, legacyHeaders: true }, clock));
      const l = await request(legacy);
      const resetAt = Math.ceil(clock.wallNow() / 1000) + 60;
      assert.deepEqual([l.headers["x-ratelimit-limit"], l.headers["x-ratelimit-remaining"], l.headers["x-ratelimit-reset"]], ["1", "0", String(resetAt)]);
      const lr = await request(legacy);
      assert.equal(lr.status, 429);
      assert.equal(lr.headers["x-ratelimit-remaining"], "0");
      assert.equal(lr.headers["retry-after"], "60");
    });
  });
}

describe("rateLimit option mapping (Express 5)", () => {
  const fw = frameworks[0]!;

  test("max is limit's older name; a limit function gives each request its tier, each counted apart", async () => {
    assert.deepEqual(await statuses(await fw.serve(limit({ max: 2 })), 3), [200, 200, 429]);
    const port = await fw.serve(limit({ limit: async (req) => (req.headers["x-plan"] === "pro" ? 3 : 1) }));
    assert.deepEqual(await statuses(port, 2), [200, 429]);
    const pro = await request(port, { headers: { "x-plan": "pro" } });
    assert.deepEqual(item(pro, "ratelimit-policy").params, { q: 3, w: 60 });
    assert.deepEqual(await statuses(port, 3, { headers: { "x-plan": "pro" } }), [200, 200, 429]);
  });

  test("requestPropertyName: the request carries limit, used, remaining and resetTime under the chosen name", async () => {
    const clock = new ManualClock(0);
    // Callbacks typed with Express's own Request are accepted as they are.
    const mw = rateLimit({ clock, limit: 3, requestPropertyName: "quota", keyGenerator: (req: express.Request) => req.ip ?? "none" });
    closers.push(() => mw.dispose());
    const a = express();
    a.use(mw);
    a.use((req, res) => res.json((req as unknown as { quota: unknown }).quota));
    const server = http.createServer(a);
    const port = await listen(server);
    closers.push(() => close(server));
    const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5000) });
    assert.deepEqual(await r.json(), { limit: 3, used: 1, remaining: 2, resetTime: new Date(clock.wallNow() + 60_000).toISOString(), key: "127.0.0.1" });
  });

  test("identifier names the policy in the draft-8 headers", async () => {
    const r = await request(await fw.serve(limit({ limit: 2, identifier: "api" })));
    assert.equal(item(r, "ratelimit").name, "api");
  });

  test("queue (FIFO): requests over the limit wait for the next window instead of a 429", async () => {
    const clock = new ManualClock(0);
    const mw = limit({ windowMs: 60_000, limit: 1, queue: 1 }, clock);
    const port = await fw.serve(mw);
    assert.equal((await request(port)).status, 200);
    const waiting = startRequest(port);
    await waitUntil(() => mw.limiter!.queued === 1, { timeoutMs: 5_000, message: "the request to queue" });
    assert.equal((await request(port)).status, 429, "the queue holds one");
    clock.advance(60_000);
    assert.equal((await waiting.reply).status, 200, "the queued request is served in the next window");
  });

  test("lockout: failed logins (401) lock the user out on every address; shadow mode only logs", async () => {
    const port = await fw.serve(limit({ limit: 100, lockout: { maxFailures: 2, windowMs: 60_000, durationMs: 600_000 } }));
    const login = (password: string, from = "127.0.0.1") =>
      request(port, { method: "POST", path: "/login", from, headers: { "content-type": "application/x-www-form-urlencoded" }, body: `username=alice&password=${password}` });
    assert.equal((await login("wrong")).status, 401);
    assert.equal((await login("wrong")).status, 401);
    const locked = await login("right", "127.0.0.9");
    assert.equal(locked.status, 429);
    assert.ok(Number(locked.headers["retry-after"]) > 500);

    const logger = recordingLogger();
    const shadow = await fw.serve(limit({ limit: 1, shadow: true, logger }));
    assert.deepEqual(await statuses(shadow, 3), [200, 200, 200]);
    assert.ok(logger.entries.some((e) => e.msg === "request would be throttled (shadow)"));
  });

  test("algorithm gcra: limit per window at a steady pace with a burst", async () => {
    const clock = new ManualClock(0);
    const port = await fw.serve(limit({ windowMs: 60_000, limit: 2, algorithm: "gcra" }, clock));
    assert.deepEqual(await statuses(port, 3), [200, 200, 429]);
    clock.advance(30_000);
    assert.deepEqual(await statuses(port, 2), [200, 429], "one emission interval later, one more fits");
  });

  test("store: two middlewares (two processes) on one Redis count together", async () => {
    const prefix = uniquePrefix("http-one-liner");
    const stores = [new RedisStore({ url: REDIS_URL, prefix, timeoutMs: 2000 }), new RedisStore({ url: REDIS_URL, prefix, timeoutMs: 2000 })];
    closers.push(async () => {
      await Promise.all(stores.map((s) => s.close()));
      await deletePrefix(prefix);
    });
    for (const s of stores) assert.ok(await s.ready(), "Redis answers");
    // A window far longer than the test: a window boundary cannot fall inside it.
    const ports = await Promise.all(stores.map((store) => fw.serve(rateLimit({ windowMs: 3_600_000, limit: 3, store }))));
    const got: number[] = [];
    for (let i = 0; i < 4; i++) got.push((await request(ports[i % 2]!)).status);
    assert.deepEqual(got, [200, 200, 200, 429]);
  });

  test("bad options fail at creation, naming the option", () => {
    assert.throws(() => rateLimit({ skipSuccessfulRequests: true } as RateLimitOptions), /skipSuccessfulRequests: is not supported/);
    assert.throws(() => rateLimit({ standardHeaders: "draft-9" as "draft-8" }), /standardHeaders/);
    assert.throws(() => rateLimit({ store: { increment() {}, decrement() {}, resetKey() {} } as never }), /store: must be a Portcullis store/);
    assert.throws(() => rateLimit({ limit: 0 }), /limit/);
    assert.throws(() => rateLimit({ max: "5" as unknown as number }), /max: must be a number or a function/);
    assert.throws(() => rateLimit({ algorithm: "gcra", queue: 2 }), /queue: needs the fixed_window algorithm/);
  });

  test("an error in keyGenerator goes to next(err), not a crash", async () => {
    const port = await nodeFramework.serve(
      limit({
        keyGenerator: () => {
          throw new Error("boom");
        },
      }),
    );
    const r = await request(port);
    assert.equal(r.status, 500);
    assert.doesNotMatch(r.body, /boom/);
    // The same for a handler that throws after an awaited skip.
    const throwing = await nodeFramework.serve(
      limit({
        limit: 1,
        skip: async () => false,
        handler: () => {
          throw new Error("boom");
        },
      }),
    );
    assert.deepEqual(await statuses(throwing, 2), [200, 500]);
  });
});
