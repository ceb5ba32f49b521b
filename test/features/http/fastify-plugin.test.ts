/**
 * The one-line Fastify plugin `rateLimitPlugin` with @fastify/rate-limit's
 * option names, on Fastify 5 over real HTTP (Node's client from chosen
 * loopback addresses). Windows move on an injected manual clock. Each
 * option-mapping case of docs/http.md has a test here.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import Fastify, { type FastifyInstance, type FastifyRequest } from "fastify";
import { ManualClock } from "../../../src/core/clock.js";
import { type HttpLimiter, type RateLimitPluginOptions, rateLimitPlugin } from "../../../src/features/http/index.js";
import { parseRateLimit, request } from "./helpers.js";

// What a Fastify user adds to type `fastify.portcullis` (the package's types name no Fastify type).
declare module "fastify" {
  interface FastifyInstance {
    portcullis: HttpLimiter;
  }
}

const apps: FastifyInstance[] = [];
after(async () => {
  await Promise.all(apps.map((a) => a.close()));
});

async function serve(o: RateLimitPluginOptions<FastifyRequest>, clock = new ManualClock(0)): Promise<number> {
  const app = Fastify();
  apps.push(app);
  await app.register(rateLimitPlugin, { clock, ...o });
  app.get("/*", async () => "ok");
  app.post("/login", async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, string>;
    return reply.code(body.password === "right" ? 200 : 401).send("login");
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  return (app.server.address() as { port: number }).port;
}

async function statuses(port: number, n: number, o: Parameters<typeof request>[1] = {}): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await request(port, o)).status);
  return out;
}

describe("rateLimitPlugin on Fastify 5", () => {
  test("max per timeWindow ('1 minute'): 429 with Retry-After, X-RateLimit-* (reset in seconds) and the draft-8 headers; the next window admits again", async () => {
    const clock = new ManualClock(0);
    const port = await serve({ max: 2, timeWindow: "1 minute" }, clock);
    assert.equal(apps.at(-1)!.portcullis.clock, clock, "fastify.portcullis is the limiter underneath");
    const first = await request(port);
    assert.equal(first.status, 200);
    assert.deepEqual([first.headers["x-ratelimit-limit"], first.headers["x-ratelimit-remaining"], first.headers["x-ratelimit-reset"]], ["2", "1", "60"]);
    assert.deepEqual(parseRateLimit(first.headers["ratelimit-policy"])[0]!.params, { q: 2, w: 60 });
    await request(port);
    clock.advance(20_000);
    const refused = await request(port);
    assert.equal(refused.status, 429);
    assert.equal(refused.headers["retry-after"], "40");
    assert.equal(refused.headers["x-ratelimit-remaining"], "0");
    assert.equal(refused.headers["x-ratelimit-reset"], "40");
    assert.deepEqual(parseRateLimit(refused.headers["ratelimit"])[0]!.params, { r: 0, t: 40 });
    assert.match(String(refused.headers["content-type"]), /^application\/problem\+json/);
    assert.equal((await request(port, { from: "127.0.0.2" })).status, 200, "another address has its own count");
    clock.advance(40_000);
    assert.equal((await request(port)).status, 200);
  });

  test("timeWindow in milliseconds; keyGenerator counts by its key (async too)", async () => {
    const port = await serve({ max: 1, timeWindow: 10_000, keyGenerator: async (req) => String(req.headers["x-api-key"] ?? "none") });
    assert.equal((await request(port, { headers: { "x-api-key": "a" } })).status, 200);
    const again = await request(port, { headers: { "x-api-key": "a" }, from: "127.0.0.3" });
    assert.equal(again.status, 429, "one key from two addresses shares its count");
    assert.equal(again.headers["retry-after"], "10");
    assert.equal((await request(port, { headers: { "x-api-key": "b" } })).status, 200);
  });

  test("hook: the check runs in the named hook (preParsing, preValidation) as in onRequest", async () => {
    for (const hook of ["preParsing", "preValidation"] as const) {
      const port = await serve({ max: 1, hook });
      assert.deepEqual(await statuses(port, 2, { method: "POST", path: "/login", headers: { "content-type": "application/json" }, body: '{"password":"right"}' }), [200, 429], hook);
    }
  });

  test("allowList: listed addresses (or keys) and a predicate's picks are never limited", async () => {
    const listed = await serve({ max: 1, allowList: ["127.0.0.5"] });
    assert.deepEqual(await statuses(listed, 3, { from: "127.0.0.5" }), [200, 200, 200]);
    assert.deepEqual(await statuses(listed, 2, { from: "127.0.0.6" }), [200, 429]);
    const byFn = await serve({ max: 1, allowList: (req, key) => req.headers["x-internal"] === "1" || key === "never" });
    assert.deepEqual(await statuses(byFn, 3, { headers: { "x-internal": "1" } }), [200, 200, 200]);
    assert.deepEqual(await statuses(byFn, 2), [200, 429]);
  });

  test("errorResponseBuilder: an object is sent with its statusCode; an Error goes to Fastify's error handler", async () => {
    const seen: unknown[] = [];
    const obj = await serve({
      max: 1,
      errorResponseBuilder: (_req, ctx) => {
        seen.push(ctx);
        return { statusCode: 429, error: "Too Many Requests", message: `Rate limit exceeded, retry in ${ctx.after}` };
      },
    });
    await request(obj);
    const r = await request(obj);
    assert.equal(r.status, 429);
    assert.deepEqual(JSON.parse(r.body), { statusCode: 429, error: "Too Many Requests", message: "Rate limit exceeded, retry in 60 seconds" });
    assert.deepEqual(seen, [{ statusCode: 429, ban: false, max: 1, ttl: 60_000, after: "60 seconds" }]);

    const err = await serve({ max: 1, errorResponseBuilder: () => Object.assign(new Error("slow down"), { statusCode: 503 }) });
    await request(err);
    const e = await request(err);
    assert.equal(e.status, 503);
    assert.equal(JSON.parse(e.body).message, "slow down");

    // A builder that throws after an awaited key: Fastify answers 500, the process lives on.
    const throwing = await serve({
      max: 1,
      keyGenerator: async () => "k",
      errorResponseBuilder: () => {
        throw new Error("builder broke");
      },
    });
    assert.deepEqual(await statuses(throwing, 3), [200, 500, 500]);
  });

  test("addHeaders / addHeadersOnExceeding switch single headers off; enableDraftSpec names the triple RateLimit-*; standardHeaders draft-7 or false", async () => {
    const off = await serve({ max: 1, addHeadersOnExceeding: { "x-ratelimit-reset": false }, addHeaders: { "retry-after": false, "x-ratelimit-limit": false } });
    const ok = await request(off);
    assert.equal(ok.headers["x-ratelimit-reset"], undefined);
    assert.equal(ok.headers["x-ratelimit-limit"], "1");
    const no = await request(off);
    assert.equal(no.status, 429);
    assert.equal(no.headers["retry-after"], undefined);
    assert.equal(no.headers["x-ratelimit-limit"], undefined);
    assert.equal(no.headers["x-ratelimit-remaining"], "0");

    const draft = await request(await serve({ max: 3, enableDraftSpec: true }));
    assert.deepEqual([draft.headers["ratelimit-limit"], draft.headers["ratelimit-remaining"], draft.headers["ratelimit-reset"]], ["3", "2", "60"]);
    assert.equal(draft.headers["x-ratelimit-limit"], undefined);
    assert.equal(draft.headers["ratelimit"], undefined, "enableDraftSpec alone sends no draft-8 header");

    const d7 = await request(await serve({ max: 3, standardHeaders: "draft-7" }));
    assert.equal(d7.headers["ratelimit"], "limit=3, remaining=2, reset=60");
    const none = await request(await serve({ max: 3, standardHeaders: false }));
    assert.equal(none.headers["ratelimit"], undefined);
    assert.equal(none.headers["x-ratelimit-limit"], "3");
  });

  test("max as a function: each tier counted apart; onExceeded / onExceeding are called with the key", async () => {
    const exceeded: string[] = [];
    const passed: string[] = [];
    const port = await serve({
      max: async (req) => (req.headers["x-plan"] === "pro" ? 3 : 1),
      onExceeded: (_req, key) => exceeded.push(key),
      onExceeding: (_req, key) => passed.push(key),
    });
    assert.deepEqual(await statuses(port, 2), [200, 429]);
    assert.deepEqual(await statuses(port, 4, { headers: { "x-plan": "pro" } }), [200, 200, 200, 429]);
    assert.deepEqual(exceeded, ["127.0.0.1", "127.0.0.1"]);
    assert.equal(passed.length, 4, "onExceeding once per request let through");
  });

  test("lockout with a form body (read before the check), gcra and shadow", async () => {
    const login = (port: number, password: string) =>
      request(port, { method: "POST", path: "/login", headers: { "content-type": "application/x-www-form-urlencoded" }, body: `username=bob&password=${password}` });
    const locked = await serve({ max: 100, lockout: { maxFailures: 1, durationMs: 60_000 } });
    assert.equal((await login(locked, "wrong")).status, 401);
    assert.equal((await login(locked, "right")).status, 429, "bob is locked out");

    const clock = new ManualClock(0);
    const gcra = await serve({ max: 2, timeWindow: "1m", algorithm: "gcra" }, clock);
    assert.deepEqual(await statuses(gcra, 3), [200, 200, 429]);
    clock.advance(30_000);
    assert.deepEqual(await statuses(gcra, 2), [200, 429]);

    assert.deepEqual(await statuses(await serve({ max: 1, shadow: true }), 3), [200, 200, 200]);
  });

  test("options the plugin cannot honour fail registration, naming the option", async () => {
    for (const [o, re] of [
      [{ global: false }, /global/],
      [{ ban: 3 }, /ban: is not supported/],
      [{ redis: {} }, /redis: is not supported/],
      [{ timeWindow: "soon" }, /timeWindow/],
      [{ max: "10" }, /max: must be a number or a function/],
      [{ hook: "onSend" }, /hook/],
      [{ store: class {} }, /store/],
    ] as [Record<string, unknown>, RegExp][]) {
      const app = Fastify();
      apps.push(app);
      await assert.rejects(async () => {
        await app.register(rateLimitPlugin, o as RateLimitPluginOptions);
        await app.ready();
      }, re);
    }
  });
});
