/**
 * Route limits through a real node:http server, with the limiter's time on
 * a ManualClock: window boundaries, Retry-After at points across the window,
 * the header forms parsed back, the problem document, log tags, metrics,
 * route matching and keys.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { after, describe, test } from "node:test";
import { Counter, Registry } from "prom-client";
import { ManualClock } from "../../../src/core/clock.js";
import { HttpLimiter, type HttpLimiterOptions, QUOTA_EXCEEDED_TYPE, nodeRateLimit, withRateLimit } from "../../../src/features/http/index.js";
import { close, listen, parseRateLimit, recordingLogger, request } from "./helpers.js";

const servers: http.Server[] = [];
after(async () => {
  await Promise.all(servers.map(close));
});

async function serve(o: Omit<HttpLimiterOptions, "clock">, clock = new ManualClock(0)) {
  const limiter = new HttpLimiter({ ...o, clock });
  const server = http.createServer(
    withRateLimit(limiter, (req, res) => {
      res.setHeader("content-type", "text/plain");
      res.end(`ok ${req.url}`);
    }),
  );
  servers.push(server);
  const port = await listen(server);
  return { port, clock, limiter, get: (path = "/token", from?: string, headers?: Record<string, string>) => request(port, { path, from, headers }) };
}

const token = (permitLimit = 3, extra: Partial<{ queueLimit: number }> = {}) => ({
  name: "token",
  match: "/token",
  limit: { algorithm: "fixed_window" as const, permitLimit, windowMs: 60_000, ...extra },
});

describe("fixed window through node:http", () => {
  test("the window boundary: the last millisecond is still limited, the next window admits again", async () => {
    const s = await serve({ routes: [token(3)] });
    for (let i = 0; i < 3; i++) assert.equal((await s.get()).status, 200);
    assert.equal((await s.get()).status, 429);
    s.clock.set(59_999);
    const last = await s.get();
    assert.equal(last.status, 429);
    assert.equal(last.headers["retry-after"], "1");
    s.clock.set(60_000);
    for (let i = 0; i < 3; i++) assert.equal((await s.get()).status, 200, `request ${i} of the new window`);
    assert.equal((await s.get()).status, 429);
  });

  test("Retry-After at several points of the window: whole seconds, rounded up, >= 1, and >= the RateLimit t", async () => {
    const s = await serve({ routes: [token(1)] });
    assert.equal((await s.get()).status, 200);
    const points: [number, number][] = [
      [0, 60],
      [1, 60],
      [15_000, 45],
      [30_000.4, 30],
      [59_000, 1],
      [59_500, 1],
      [59_999.9, 1],
    ];
    for (const [at, expected] of points) {
      s.clock.set(at);
      const r = await s.get();
      assert.equal(r.status, 429, `at ${at} ms`);
      const retry = Number(r.headers["retry-after"]);
      assert.equal(retry, expected, `Retry-After at ${at} ms`);
      const [item] = parseRateLimit(r.headers["ratelimit"]);
      assert.equal(item!.params.r, 0);
      assert.ok(retry >= (item!.params.t as number), `Retry-After ${retry} before t ${String(item!.params.t)} at ${at} ms`);
      assert.ok(Number.isInteger(retry) && retry >= 1);
    }
  });

  test("RateLimit-Policy and RateLimit parse as Structured Field lists with the right numbers", async () => {
    const s = await serve({ routes: [token(3)] });
    const a = await s.get();
    assert.deepEqual(parseRateLimit(a.headers["ratelimit-policy"]), [{ name: "token", params: { q: 3, w: 60 } }]);
    assert.deepEqual(parseRateLimit(a.headers["ratelimit"]), [{ name: "token", params: { r: 2, t: 60 } }]);
    s.clock.set(10_000);
    const b = await s.get();
    assert.deepEqual(parseRateLimit(b.headers["ratelimit"]), [{ name: "token", params: { r: 1, t: 50 } }]);
    assert.equal(b.headers["retry-after"], undefined, "no Retry-After on an allowed response");
  });

  test("one item per limit on a route with several limits", async () => {
    const s = await serve({
      routes: [
        {
          name: "token",
          match: "/token",
          limits: [
            { name: "token-ip", algorithm: "fixed_window", permitLimit: 5, windowMs: 60_000, key: "ip" },
            { name: "token-client", algorithm: "fixed_window", permitLimit: 2, windowMs: 10_000, key: { kind: "client_id", header: "x-client-id" } },
          ],
        },
      ],
    });
    const h = { "x-client-id": "app-1" };
    const a = await s.get("/token", undefined, h);
    assert.deepEqual(parseRateLimit(a.headers["ratelimit-policy"]), [
      { name: "token-ip", params: { q: 5, w: 60 } },
      { name: "token-client", params: { q: 2, w: 10 } },
    ]);
    assert.deepEqual(parseRateLimit(a.headers["ratelimit"]), [
      { name: "token-ip", params: { r: 4, t: 60 } },
      { name: "token-client", params: { r: 1, t: 10 } },
    ]);
    await s.get("/token", undefined, h);
    const c = await s.get("/token", undefined, h);
    assert.equal(c.status, 429);
    assert.deepEqual(JSON.parse(c.body)["violated-policies"], ["token-client"]);
    assert.equal(c.headers["retry-after"], "10");
    // The rejected request was not charged to the per-IP limit (all or nothing).
    const d = await s.get("/token", undefined, { "x-client-id": "app-2" });
    assert.deepEqual(parseRateLimit(d.headers["ratelimit"])[0], { name: "token-ip", params: { r: 2, t: 60 } });
  });

  test("the older RateLimit-Limit/-Remaining/-Reset and X-RateLimit-* forms", async () => {
    const clock = new ManualClock(0, 1_700_000_000_000);
    const s = await serve({ routes: [token(2)], headers: { format: ["legacy", "x"] } }, clock);
    clock.set(20_000);
    const a = await s.get();
    assert.equal(a.headers["ratelimit-limit"], "2");
    assert.equal(a.headers["ratelimit-remaining"], "1");
    assert.equal(a.headers["ratelimit-reset"], "40");
    assert.equal(a.headers["x-ratelimit-limit"], "2");
    assert.equal(a.headers["x-ratelimit-remaining"], "1");
    assert.equal(a.headers["x-ratelimit-reset"], String(1_700_000_020 + 40));
    assert.equal(a.headers["ratelimit-policy"], undefined, "the IETF form is off when not asked for");
    await s.get();
    const r = await s.get();
    assert.equal(r.status, 429);
    assert.equal(r.headers["ratelimit-remaining"], "0");
    assert.equal(r.headers["retry-after"], "40");
  });

  test("headers on allowed responses can be switched off; rejections keep them", async () => {
    const s = await serve({ routes: [token(1)], headers: { onAllowed: false } });
    const a = await s.get();
    assert.equal(a.status, 200);
    assert.equal(a.headers["ratelimit"], undefined);
    assert.equal(a.headers["ratelimit-policy"], undefined);
    const b = await s.get();
    assert.equal(b.status, 429);
    assert.deepEqual(parseRateLimit(b.headers["ratelimit"]), [{ name: "token", params: { r: 0, t: 60 } }]);
  });

  test("the 429 body is an RFC 9457 problem document naming the violated policy; it can be configured or turned off", async () => {
    const s = await serve({ routes: [token(1)] });
    await s.get();
    const r = await s.get();
    assert.equal(r.headers["content-type"], "application/problem+json");
    const doc = JSON.parse(r.body);
    assert.equal(doc.type, QUOTA_EXCEEDED_TYPE);
    assert.equal(doc.status, 429);
    assert.deepEqual(doc["violated-policies"], ["token"]);
    assert.equal(typeof doc.title, "string");

    const custom = await serve({ routes: [token(1)], problem: { type: "https://example.test/problems/slow-down", title: "Slow down" } });
    await custom.get();
    const c = JSON.parse((await custom.get()).body);
    assert.equal(c.type, "https://example.test/problems/slow-down");
    assert.equal(c.title, "Slow down");

    const none = await serve({ routes: [token(1)], problem: false });
    await none.get();
    const n = await none.get();
    assert.equal(n.status, 429);
    assert.equal(n.body, "");
    assert.equal(n.headers["content-type"], undefined);
  });

  test("every throttle event is logged with endpoint, client_id, remote_ip, limiter and request id, and counted", async () => {
    const logger = recordingLogger();
    const registry = new Registry();
    const rejections = new Counter({ name: "portcullis_http_rejections_total", help: "HTTP requests rejected", labelNames: ["route", "limiter"], registers: [registry] });
    const rejectedBy: string[] = [];
    const s = await serve({ routes: [token(1)], logger, hooks: { rejections, onReject: (route, limiter) => rejectedBy.push(`${route}/${limiter}`) } });
    await s.get("/token?client_id=cli-7", "127.0.0.2");
    await s.get("/token?client_id=cli-7", "127.0.0.2", { "x-request-id": "req-42" });
    const warn = logger.entries.filter((e) => e.level === "warn");
    assert.equal(warn.length, 1);
    assert.deepEqual(
      { endpoint: warn[0]!.fields.endpoint, client_id: warn[0]!.fields.client_id, remote_ip: warn[0]!.fields.remote_ip, limiter: warn[0]!.fields.limiter, request_id: warn[0]!.fields.request_id },
      { endpoint: "token", client_id: "cli-7", remote_ip: "127.0.0.2", limiter: "token", request_id: "req-42" },
    );
    assert.equal(warn[0]!.fields.retry_after, 60);
    const text = await registry.metrics();
    assert.match(text, /portcullis_http_rejections_total\{route="token",limiter="token"\} 1/);
    assert.deepEqual(rejectedBy, ["token/token"]);
  });

  test("token bucket and sliding window limits report their policy and a consistent Retry-After", async () => {
    const s = await serve({
      routes: [
        { name: "tb", match: "/tb", limit: { algorithm: "token_bucket", rate: 2, periodMs: 10_000, burst: 2 } },
        { name: "sw", match: "/sw", limit: { algorithm: "sliding_window", limit: 2, windowMs: 30_000 } },
      ],
    });
    const a = await s.get("/tb");
    assert.deepEqual(parseRateLimit(a.headers["ratelimit-policy"]), [{ name: "tb", params: { q: 2, w: 10 } }]);
    await s.get("/tb");
    const tb = await s.get("/tb");
    assert.equal(tb.status, 429);
    // One token comes back every 5 s.
    assert.equal(tb.headers["retry-after"], "5");
    assert.deepEqual(parseRateLimit(tb.headers["ratelimit"]), [{ name: "tb", params: { r: 0, t: 5 } }]);
    s.clock.set(5_000);
    assert.equal((await s.get("/tb")).status, 200);

    s.clock.set(100_000);
    await s.get("/sw");
    await s.get("/sw");
    const sw = await s.get("/sw");
    assert.equal(sw.status, 429);
    // Both requests sit 10 s into the window [90 s, 120 s); the next one fits
    // once the previous window's weight has halved: at 135 s.
    const retry = Number(sw.headers["retry-after"]);
    assert.equal(retry, 35);
    s.clock.set(100_000 + (retry - 1) * 1000);
    assert.equal((await s.get("/sw")).status, 429, "a second early is still too early");
    s.clock.set(100_000 + retry * 1000);
    assert.equal((await s.get("/sw")).status, 200, "waiting Retry-After seconds is enough");
  });

  test("shadow mode reports and logs but never rejects", async () => {
    const logger = recordingLogger();
    const shadowed: string[] = [];
    const s = await serve({
      routes: [{ name: "token", match: "/token", limit: { algorithm: "fixed_window", permitLimit: 1, windowMs: 60_000, shadow: true } }],
      logger,
      hooks: { onShadowReject: (route, limiter) => shadowed.push(`${route}/${limiter}`) },
    });
    for (let i = 0; i < 4; i++) assert.equal((await s.get()).status, 200);
    assert.deepEqual(shadowed, ["token/token", "token/token", "token/token"]);
    assert.equal(logger.entries.filter((e) => e.msg.includes("shadow")).length, 3);
    assert.equal(logger.entries.filter((e) => e.level === "warn").length, 0);
  });
});

describe("routes and keys", () => {
  test("routes match by pattern and method, first match wins; other paths pass untouched", async () => {
    const s = await serve({
      routes: [
        { name: "token", match: "/token", methods: ["POST"], limit: { algorithm: "fixed_window", permitLimit: 1, windowMs: 60_000 } },
        { name: "internal", match: "/internal/*", limit: { algorithm: "fixed_window", permitLimit: 2, windowMs: 60_000 } },
      ],
    });
    for (let i = 0; i < 3; i++) {
      const r = await s.get("/token");
      assert.equal(r.status, 200, "GET /token is not the POST route");
      assert.equal(r.headers["ratelimit"], undefined);
    }
    assert.equal((await request(s.port, { method: "POST", path: "/token", body: "" })).status, 200);
    assert.equal((await request(s.port, { method: "POST", path: "/token/", body: "" })).status, 429, "a trailing slash is the same route");
    assert.equal((await s.get("/other")).headers["ratelimit"], undefined);
    assert.equal((await s.get("/internal/a")).status, 200);
    assert.equal((await s.get("/internal/b/c")).status, 200);
    assert.equal((await s.get("/internal")).status, 429, "the prefix itself belongs to /internal/*");
  });

  test("path tricks do not slip past a prefix route", async () => {
    const s = await serve({ routes: [{ name: "internal", match: "/internal/*", limit: { algorithm: "fixed_window", permitLimit: 1, windowMs: 60_000 } }] });
    assert.equal((await s.get("/internal/x")).status, 200);
    for (const p of ["//internal/x", "/a/../internal/x", "/%69nternal/x", "/internal%2Fx", "/./internal/x", "/internal/x?y=1", "/INTERNAL/x", "/%49nternal/x"]) {
      assert.equal((await s.get(p)).status, 429, `${p} is /internal/*`);
    }
  });

  test("case-sensitive matching when asked for", async () => {
    const s = await serve({ caseSensitive: true, routes: [{ name: "internal", match: "/internal/*", limit: { algorithm: "fixed_window", permitLimit: 1, windowMs: 60_000 } }] });
    assert.equal((await s.get("/internal/x")).status, 200);
    assert.equal((await s.get("/internal/y")).status, 429);
    assert.equal((await s.get("/INTERNAL/x")).status, 200, "another resource for a case-sensitive router");
  });

  test("client_id keys: header, query, form field and Basic auth; a request without one is counted by its IP", async () => {
    const s = await serve({ routes: [{ name: "token", match: "/token", limit: { algorithm: "fixed_window", permitLimit: 1, windowMs: 60_000, key: "client_id" } }] });
    const post = (body: string, headers: Record<string, string> = {}) =>
      request(s.port, { method: "POST", path: "/token", body, headers: { "content-type": "application/x-www-form-urlencoded", ...headers } });
    assert.equal((await post("client_id=a&grant_type=client_credentials")).status, 200);
    assert.equal((await post("client_id=a")).status, 429, "same form client_id");
    assert.equal((await post("client_id=b")).status, 200, "another client from the same IP has its own budget");
    assert.equal((await s.get("/token?client_id=b")).status, 429, "query client_id is the same client");
    const basic = `Basic ${Buffer.from("c:secret").toString("base64")}`;
    assert.equal((await post("grant_type=client_credentials", { authorization: basic })).status, 200);
    assert.equal((await post("grant_type=client_credentials", { authorization: basic })).status, 429);
    assert.equal((await s.get("/token", "127.0.0.5")).status, 200, "no client id: counted by IP");
    assert.equal((await s.get("/token", "127.0.0.5")).status, 429);
    assert.equal((await s.get("/token", "127.0.0.6")).status, 200);
  });

  test("ip_prefix keys count a /24 together; ip keys do not", async () => {
    const s = await serve({
      routes: [
        { name: "net", match: "/net", limit: { algorithm: "fixed_window", permitLimit: 1, windowMs: 60_000, key: "ip_prefix" } },
        { name: "one", match: "/one", limit: { algorithm: "fixed_window", permitLimit: 1, windowMs: 60_000, key: "ip" } },
      ],
    });
    assert.equal((await s.get("/net", "127.0.0.2")).status, 200);
    assert.equal((await s.get("/net", "127.0.0.3")).status, 429);
    assert.equal((await s.get("/one", "127.0.0.2")).status, 200);
    assert.equal((await s.get("/one", "127.0.0.3")).status, 200);
  });

  test("route, global and custom keys", async () => {
    const s = await serve({
      routes: [
        { name: "g", match: "/g", limit: { algorithm: "fixed_window", permitLimit: 2, windowMs: 60_000, key: "global" } },
        { name: "tenant", match: "/t", limit: { algorithm: "fixed_window", permitLimit: 1, windowMs: 60_000, key: (c) => c.req.headers["x-tenant"] as string | undefined } },
      ],
    });
    assert.equal((await s.get("/g", "127.0.0.2")).status, 200);
    assert.equal((await s.get("/g", "127.0.0.3")).status, 200);
    assert.equal((await s.get("/g", "127.0.0.4")).status, 429);
    assert.equal((await s.get("/t", "127.0.0.2", { "x-tenant": "acme" })).status, 200);
    assert.equal((await s.get("/t", "127.0.0.3", { "x-tenant": "acme" })).status, 429);
    assert.equal((await s.get("/t", "127.0.0.3", { "x-tenant": "globex" })).status, 200);
  });

  test("a key function that throws answers 500 without details, and the server keeps serving", async () => {
    const s = await serve({
      routes: [
        {
          name: "boom",
          match: "/boom",
          limit: {
            algorithm: "fixed_window",
            permitLimit: 5,
            windowMs: 60_000,
            key: () => {
              throw new Error("secret internals");
            },
          },
        },
      ],
    });
    const r = await s.get("/boom");
    assert.equal(r.status, 500);
    assert.equal(r.body, "");
    assert.equal((await s.get("/fine")).status, 200);
  });

  test("a form body read for a key is bounded: larger bodies get 413 before any handler runs", async () => {
    const s = await serve({
      formBodyLimit: 100,
      routes: [{ name: "token", match: "/token", limit: { algorithm: "fixed_window", permitLimit: 5, windowMs: 60_000, key: "client_id" } }],
    });
    const form = { "content-type": "application/x-www-form-urlencoded" };
    const big = await request(s.port, { method: "POST", path: "/token", headers: form, body: `client_id=a&pad=${"x".repeat(200)}` });
    assert.equal(big.status, 413);
    const ok = await request(s.port, { method: "POST", path: "/token", headers: form, body: "client_id=a" });
    assert.equal(ok.status, 200);
  });

  test("the connect-style middleware calls next for allowed requests and passes errors on", async () => {
    const mw = nodeRateLimit({
      clock: new ManualClock(0),
      routes: [
        { name: "token", match: "/token", limit: { algorithm: "fixed_window", permitLimit: 1, windowMs: 60_000 } },
        { name: "bad", match: "/bad", limit: { algorithm: "fixed_window", permitLimit: 1, windowMs: 60_000, key: () => { throw new Error("no"); } } },
      ],
    });
    const errors: unknown[] = [];
    const server = http.createServer((req, res) =>
      mw(req, res, (err) => {
        if (err !== undefined) {
          errors.push(err);
          res.statusCode = 503;
          res.end();
          return;
        }
        res.end("next");
      }),
    );
    servers.push(server);
    const port = await listen(server);
    const a = await request(port, { path: "/token" });
    assert.equal(a.body, "next");
    assert.equal((await request(port, { path: "/token" })).status, 429);
    assert.equal((await request(port, { path: "/bad" })).status, 503);
    assert.equal(errors.length, 1);
    assert.ok(mw.limiter instanceof HttpLimiter);
  });

  test("bad configuration is refused with the offending key path", () => {
    assert.throws(() => new HttpLimiter({ routes: [{ match: "token" }] }), /routes\[0\]\.match/);
    assert.throws(() => new HttpLimiter({ routes: [{ match: "/t", limit: { algorithm: "fixed_window", permitLimit: 0, windowMs: 1000 } }] }), /routes\[0\]\.limits\[0\]\.permitLimit/);
    assert.throws(() => new HttpLimiter({ routes: [{ match: "/t", methods: ["GE T"] }] }), /routes\[0\]\.methods/);
    assert.throws(() => new HttpLimiter({ routes: [], trustedProxies: ["10.0.0.0/33"] }), /trustedProxies\[0\]/);
    assert.throws(() => new HttpLimiter({ routes: [], headers: { format: "draft" as never } }), /headers\.format/);
  });
});
