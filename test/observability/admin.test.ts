/**
 * The admin API against a real gateway on 127.0.0.1: the token, every
 * endpoint's happy and error path, unbanning that takes effect at once, and
 * the admin rate limit per strategy (on a ManualClock, so recovery is exact).
 */
import net from "node:net";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock, systemClock } from "../../src/core/clock.js";
import { attachObservability } from "../../src/admin/observability.js";
import { BearerAuth } from "../../src/admin/auth.js";
import { ERROR_CODES } from "../../src/admin/errors.js";
import { Readiness } from "../../src/admin/readiness.js";
import { routes } from "../../src/admin/routes.js";
import { Client, connectDoc, connectHead, probe, startGateway, withTimeout } from "../gateway/fixtures.js";
import { TOKEN, adminConfig, type Observed, sample, startObserved } from "./fixtures.js";
import { memoryBox } from "../helpers/memory-box.js";

const PROTECTED: Array<[string, string, unknown?]> = [
  ["GET", "/metrics"],
  ["GET", "/v1/bans"],
  ["POST", "/v1/bans", { ip: "127.0.0.50" }],
  ["DELETE", "/v1/bans/127.0.0.50"],
  ["GET", "/v1/limits/ban/127.0.0.50"],
  ["POST", "/v1/reload"],
  ["GET", "/v1/stats"],
];

describe("admin API", () => {
  let o: Observed;
  let reloadResult: { ok: boolean; problems: string[] } = { ok: true, problems: [] };
  before(async () => {
    o = await startObserved(await connectDoc({ guard: { ban: { failures: 3 } } }), {
      processMetrics: false,
      reload: async () => {
        if (reloadResult.ok) await o.gateway.reload(o.gateway.config);
        return reloadResult;
      },
    });
  });
  after(() => o?.stop());

  test("every data endpoint answers 401 without a token, with a wrong one, or with another scheme", async () => {
    for (const [method, path, body] of PROTECTED) {
      for (const token of [null, "wrong", "X".repeat(TOKEN.length)]) {
        const r = await o.call(method, path, { token, body });
        assert.equal(r.status, 401, `${method} ${path} with ${String(token)}`);
        assert.equal((r.json.error as { code: string }).code, "unauthorized");
        assert.match(r.headers.get("www-authenticate") ?? "", /^Bearer/);
      }
      const basic = await o.call(method, path, { token: null, body, headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString("base64")}` } });
      assert.equal(basic.status, 401, `${method} ${path} with Basic`);
    }
    // Nothing was banned by the refused POST.
    assert.equal([...memoryBox(o.gateway).banned()].length, 0);
  });

  test("health, readiness and the OpenAPI document are open; the document lists every route", async () => {
    assert.deepEqual((await o.call("GET", "/healthz", { token: null })).json, { status: "ok" });
    const ready = await o.call("GET", "/readyz", { token: null });
    assert.equal(ready.status, 200);
    assert.equal(ready.json.status, "ready");
    const doc = await o.call("GET", "/v1/openapi.json", { token: null });
    assert.equal(doc.status, 200);
    const paths = doc.json.paths as Record<string, Record<string, unknown>>;
    const table = routes({ gateway: o.gateway, metrics: o.obs.metrics, readiness: o.obs.readiness, clock: systemClock });
    assert.ok(table.length >= 10);
    for (const r of table) {
      const op = paths[r.template]?.[r.method.toLowerCase()] as { security?: unknown[] } | undefined;
      assert.ok(op, `${r.method} ${r.template} documented`);
      // Open routes say so (security: []); protected ones inherit the bearer requirement.
      assert.equal(op.security?.length === 0, !r.auth, `${r.method} ${r.template} security`);
    }
    const codes = (((doc.json.components as Record<string, unknown>).schemas as Record<string, { properties: { error: { properties: { code: { enum: string[] } } } } }>).Error)!.properties.error.properties.code.enum;
    assert.deepEqual(codes, Object.keys(ERROR_CODES));
  });

  test("readiness fails with 503 when a registered check fails, and passes again when it is removed", async () => {
    const remove = o.obs.readiness.add("redis", () => ({ ok: false, detail: "connection refused" }));
    const r = await o.call("GET", "/readyz", { token: null });
    assert.equal(r.status, 503);
    assert.equal(r.json.status, "not_ready");
    assert.deepEqual((r.json.checks as Array<{ name: string; ok: boolean }>).map((c) => [c.name, c.ok]), [["store", true], ["redis", false]]);
    remove();
    assert.equal((await o.call("GET", "/readyz", { token: null })).status, 200);
  });

  test("POST /v1/bans bans at once with the given duration; DELETE lets the address connect again at once", async () => {
    const before = sample((await o.call("GET", "/metrics")).text, "portcullis_bans_total", { reason: "manual" });
    const r = await o.call("POST", "/v1/bans", { body: { ip: "127.0.0.20", duration: "10m", reason: "scanner" } });
    assert.equal(r.status, 201);
    assert.equal(r.json.key, "127.0.0.20");
    assert.equal(r.json.reason, "scanner");
    assert.ok(Math.abs((r.json.remaining_ms as number) - 600_000) < 5000, `remaining ${String(r.json.remaining_ms)}`);
    assert.ok(Math.abs(Date.parse(r.json.until as string) - Date.now() - 600_000) < 5000);
    const refused = await probe(o.port, "127.0.0.20");
    refused.client.destroy();
    assert.equal(refused.served, false, "banned address is refused");
    const text = (await o.call("GET", "/metrics")).text;
    assert.equal(sample(text, "portcullis_bans_total", { reason: "manual" }), before + 1);

    const del = await o.call("DELETE", "/v1/bans/127.0.0.20");
    assert.equal(del.status, 200);
    assert.deepEqual(del.json, { key: "127.0.0.20", unbanned: true });
    const served = await probe(o.port, "127.0.0.20");
    served.client.destroy();
    assert.equal(served.served, true, "unbanned address is served at once");
    assert.equal(sample((await o.call("GET", "/metrics")).text, "portcullis_unbans_total", { reason: "api" }), 1);

    const again = await o.call("DELETE", "/v1/bans/127.0.0.20");
    assert.equal(again.status, 404);
    assert.equal((again.json.error as { code: string }).code, "not_banned");
  });

  test("a duration in seconds, and an IPv6 address banned by its prefix and unbanned by the URL-encoded key", async () => {
    const r = await o.call("POST", "/v1/bans", { body: { ip: "2001:db8::7", duration: 30 } });
    assert.equal(r.status, 201);
    assert.equal(r.json.key, "2001:db8::/64");
    assert.ok(Math.abs((r.json.remaining_ms as number) - 30_000) < 5000);
    const del = await o.call("DELETE", `/v1/bans/${encodeURIComponent("2001:db8::/64")}`);
    assert.equal(del.status, 200);
    assert.equal([...memoryBox(o.gateway).banned()].some((b) => b.key === "2001:db8::/64"), false);
  });

  test("POST /v1/bans refuses bad input with stable codes and bans nothing", async () => {
    const cases: Array<[unknown, string | undefined, number, string]> = [
      [{}, undefined, 400, "invalid_address"],
      [{ ip: "not-an-ip" }, undefined, 400, "invalid_address"],
      [{ ip: "127.0.0.21", duration: "forever" }, undefined, 400, "invalid_duration"],
      [{ ip: "127.0.0.21", duration: -5 }, undefined, 400, "invalid_duration"],
      [{ ip: "127.0.0.21", duration: "400d" }, undefined, 400, "invalid_duration"],
      [{ ip: "127.0.0.21", reason: "x".repeat(201) }, undefined, 400, "bad_request"],
      ["{not json", undefined, 400, "bad_request"],
      ["[1,2]", undefined, 400, "bad_request"],
      [{ ip: "127.0.0.21" }, "text/plain", 415, "unsupported_media_type"],
      [{ ip: "127.0.0.21", pad: "x".repeat(20_000) }, undefined, 413, "payload_too_large"],
    ];
    for (const [body, type, status, code] of cases) {
      const r = await o.call("POST", "/v1/bans", { body, headers: type ? { "content-type": type } : {} });
      assert.equal(r.status, status, JSON.stringify(body).slice(0, 60));
      assert.equal((r.json.error as { code: string }).code, code);
      assert.doesNotMatch(r.text, /at .*\.ts:\d+/, "no stack trace");
    }
    assert.equal([...memoryBox(o.gateway).banned()].some((b) => b.key === "127.0.0.21"), false);
  });

  test("GET /v1/bans pages through every ban in key order", async () => {
    const ips = ["127.0.0.31", "127.0.0.32", "127.0.0.33", "127.0.0.34", "127.0.0.35"];
    for (const ip of ips) assert.equal((await o.call("POST", "/v1/bans", { body: { ip, duration: "5m" } })).status, 201);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = `/v1/bans?limit=2${cursor ? `&cursor=${cursor}` : ""}`;
      const r = await o.call("GET", q);
      assert.equal(r.status, 200);
      const bans = r.json.bans as Array<{ key: string; remaining_ms: number; until: string }>;
      assert.ok(bans.length <= 2);
      for (const b of bans) {
        assert.ok(b.remaining_ms > 0 && b.remaining_ms <= 300_000);
        assert.ok(!Number.isNaN(Date.parse(b.until)));
      }
      seen.push(...bans.map((b) => b.key));
      cursor = r.json.next_cursor as string | null;
      pages++;
    } while (cursor !== null && pages < 10);
    assert.deepEqual(seen, ips);
    assert.equal(pages, 3);
    for (const ip of ips) await o.call("DELETE", `/v1/bans/${ip}`);

    const bad: Array<[string, string]> = [["limit=0", "bad_request"], ["limit=501", "bad_request"], ["limit=abc", "bad_request"], ["cursor=!!", "invalid_cursor"]];
    for (const [q, code] of bad) {
      const r = await o.call("GET", `/v1/bans?${q}`);
      assert.equal(r.status, 400, q);
      assert.equal((r.json.error as { code: string }).code, code);
    }
  });

  test("GET /v1/limits reads a key's state without consuming anything", async () => {
    const c = new Client(o.port, "127.0.0.40");
    await c.connected();
    c.write(connectHead("127.0.0.1:1", { user: "alice", password: "wrong" }));
    await c.until(() => c.text().includes("407"), 5000, "407");
    c.destroy();
    let r = await o.call("GET", "/v1/limits/ban/127.0.0.40");
    assert.equal(r.status, 200);
    assert.equal(r.json.limiter, "ban");
    assert.equal(r.json.streak, 1);
    assert.equal(r.json.state, "clear");
    for (let i = 0; i < 5; i++) await o.call("GET", "/v1/limits/ban/127.0.0.40");
    r = await o.call("GET", "/v1/limits/ban/127.0.0.40");
    assert.equal(r.json.streak, 1, "reading counted nothing");

    await o.call("POST", "/v1/bans", { body: { ip: "127.0.0.40", duration: "2m" } });
    r = await o.call("GET", "/v1/limits/ban/127.0.0.40");
    assert.equal(r.json.state, "banned");
    assert.equal(r.json.allowed, false);
    assert.ok((r.json.retry_after_ms as number) > 100_000);
    await o.call("DELETE", "/v1/bans/127.0.0.40");

    const unknown = await o.call("GET", "/v1/limits/nope/127.0.0.40");
    assert.equal(unknown.status, 404);
    assert.equal((unknown.json.error as { code: string }).code, "unknown_limiter");
    const bad = await o.call("GET", "/v1/limits/ban/not-an-ip");
    assert.equal(bad.status, 400);
    assert.equal((bad.json.error as { code: string }).code, "invalid_address");
  });

  test("POST /v1/reload applies, or reports the refusal with its problems", async () => {
    const ok = await o.call("POST", "/v1/reload");
    assert.equal(ok.status, 200);
    assert.equal(sample((await o.call("GET", "/metrics")).text, "portcullis_reloads_total", { result: "ok" }), 1);
    reloadResult = { ok: false, problems: ["guard.max_connections_per_ip: expected a positive integer"] };
    const bad = await o.call("POST", "/v1/reload");
    assert.equal(bad.status, 422);
    assert.equal((bad.json.error as { code: string }).code, "reload_failed");
    assert.deepEqual((bad.json.error as { problems: string[] }).problems, reloadResult.problems);
    reloadResult = { ok: true, problems: [] };
  });

  test("GET /v1/stats carries totals and the top offenders", async () => {
    const r = await o.call("GET", "/v1/stats");
    assert.equal(r.status, 200);
    const offenders = r.json.top_offenders as Array<{ key: string; count: number }>;
    assert.ok(offenders.some((x) => x.key === "127.0.0.40" && x.count >= 1));
    assert.ok((r.json.limiters as Record<string, { allowed: number }>).ban!.allowed >= 1);
  });

  test("unknown paths are 404, known paths with another method 405, both as JSON", async () => {
    const nf = await o.call("GET", "/v2/nothing");
    assert.equal(nf.status, 404);
    assert.equal((nf.json.error as { code: string }).code, "not_found");
    const mna = await o.call("PUT", "/v1/bans");
    assert.equal(mna.status, 405);
    assert.equal((mna.json.error as { code: string }).code, "method_not_allowed");
  });

  test("garbage on the wire is closed without a crash, and the API keeps answering", async () => {
    const s = net.connect({ port: o.obs.address.port, host: "127.0.0.1" });
    s.on("error", () => {});
    s.write("\x16\x03\x01garbage\r\n\r\n");
    await withTimeout(new Promise<void>((r) => s.once("close", () => r())), 5000, "garbage closed");
    assert.equal((await o.call("GET", "/healthz", { token: null })).status, 200);
  });

  test("the dashboard page is served with a same-origin-only content policy", async () => {
    const r = await o.call("GET", "/", { token: null });
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type") ?? "", /text\/html/);
    assert.match(r.headers.get("content-security-policy") ?? "", /connect-src 'self'/);
    assert.match(r.text, /uPlot\.iife\.min\.js/);
    const js = await o.call("GET", "/assets/uPlot.iife.min.js", { token: null });
    assert.equal(js.status, 200);
    assert.match(js.text, /uPlot/);
  });
});

describe("admin rate limit", () => {
  const strategies = async (strategy: "path" | "endpoint" | "global") => {
    const clock = new ManualClock(0, Date.now());
    const o = await startObserved(await connectDoc(), { clock, processMetrics: false, admin: { rate_limit: { strategy, limit: 1, window: 60_000, burst: 2 } } });
    return { o, clock };
  };

  test("global: every request shares one budget; 429 with Retry-After, then allowed again after the wait", async () => {
    const { o, clock } = await strategies("global");
    try {
      assert.equal((await o.call("GET", "/v1/bans")).status, 200);
      assert.equal((await o.call("GET", "/v1/stats")).status, 200);
      const r = await o.call("GET", "/healthz", { token: null });
      assert.equal(r.status, 429);
      assert.equal((r.json.error as { code: string }).code, "rate_limited");
      assert.equal(r.headers.get("retry-after"), "60");
      clock.advance(60_000);
      assert.equal((await o.call("GET", "/healthz", { token: null })).status, 200);
    } finally {
      await o.stop();
    }
  });

  test("endpoint: each route has its own budget, whatever its parameters", async () => {
    const { o } = await strategies("endpoint");
    try {
      assert.equal((await o.call("GET", "/v1/limits/ban/127.0.0.1")).status, 200);
      assert.equal((await o.call("GET", "/v1/limits/ban/127.0.0.2")).status, 200);
      const r = await o.call("GET", "/v1/limits/ban/127.0.0.3");
      assert.equal(r.status, 429);
      assert.ok(Number(r.headers.get("retry-after")) >= 1);
      assert.equal((await o.call("GET", "/v1/bans")).status, 200, "another route is unaffected");
    } finally {
      await o.stop();
    }
  });

  test("path: each exact path has its own budget", async () => {
    const { o } = await strategies("path");
    try {
      assert.equal((await o.call("GET", "/v1/limits/ban/127.0.0.1")).status, 200);
      assert.equal((await o.call("GET", "/v1/limits/ban/127.0.0.1")).status, 200);
      assert.equal((await o.call("GET", "/v1/limits/ban/127.0.0.1")).status, 429);
      assert.equal((await o.call("GET", "/v1/limits/ban/127.0.0.2")).status, 200, "another path is unaffected");
    } finally {
      await o.stop();
    }
  });

  test("each 429 of the admin limit is counted by endpoint and logged once as event=limited at info", async () => {
    const { o } = await strategies("endpoint");
    try {
      for (let i = 0; i < 2; i++) assert.equal((await o.call("GET", "/v1/limits/ban/127.0.0.1")).status, 200);
      for (let i = 0; i < 3; i++) assert.equal((await o.call("GET", "/v1/limits/ban/127.0.0.1")).status, 429);
      for (let i = 0; i < 3; i++) await o.call("GET", "/nowhere", { token: null });
      const text = await o.obs.metrics.expose();
      assert.equal(sample(text, "portcullis_admin_rate_limited_total", { endpoint: "GET /v1/limits/{limiter}/{key}" }), 3);
      assert.equal(sample(text, "portcullis_admin_rate_limited_total", { endpoint: "unmatched" }), 1);
      assert.equal(sample(text, "portcullis_admin_rate_limited_total", { endpoint: "GET /v1/bans" }), 0);
      const lines = o.log.events("limited");
      assert.equal(lines.length, 4);
      const first = lines[0]!;
      assert.equal(first.level, "info");
      assert.equal(first.listener, "admin");
      assert.equal(first.route, "GET /v1/limits/{limiter}/{key}");
      assert.equal(first.limiter, "admin");
      assert.equal(first.key, "endpoint");
      assert.equal(first.reason, "rate_limited");
      assert.equal(first.remote_addr, "127.0.0.1");
      assert.ok(Number(first.retry_after_s) >= 1);
      assert.equal(lines[3]!.route, "unmatched");
      // The token is never part of the line.
      assert.ok(!o.log.lines.some((l) => l.includes(TOKEN)));
    } finally {
      await o.stop();
    }
  });

  test("requests with a wrong token are limited too, so guessing the token is slow", async () => {
    const { o } = await strategies("global");
    try {
      assert.equal((await o.call("GET", "/v1/bans", { token: "guess-1" })).status, 401);
      assert.equal((await o.call("GET", "/v1/bans", { token: "guess-2" })).status, 401);
      assert.equal((await o.call("GET", "/v1/bans", { token: "guess-3" })).status, 429);
      assert.equal((await o.call("GET", "/v1/bans")).status, 429, "the right token waits as well");
    } finally {
      await o.stop();
    }
  });
});

describe("admin token", () => {
  test("taken from the environment variable the config names", async () => {
    const g = await startGateway(await connectDoc());
    try {
      const obs = await attachObservability(g.gateway, adminConfig({ token: undefined, token_env: "TEST_ADMIN_TOKEN", bind: { host: "127.0.0.1", port: 0 } }), { env: { TEST_ADMIN_TOKEN: "from-env-0123456789" }, processMetrics: false });
      try {
        const ok = await fetch(`${obs.url}/v1/bans`, { headers: { authorization: "Bearer from-env-0123456789" }, signal: AbortSignal.timeout(5000) });
        assert.equal(ok.status, 200);
        const no = await fetch(`${obs.url}/v1/bans`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(5000) });
        assert.equal(no.status, 401);
      } finally {
        await obs.close();
      }
    } finally {
      await g.stop();
    }
  });

  test("no token, or a short one, refuses to start (nothing listens)", async () => {
    const g = await startGateway(await connectDoc());
    try {
      await assert.rejects(attachObservability(g.gateway, adminConfig({ token: undefined, token_env: "TEST_ADMIN_TOKEN" }), { env: {} }), /no token/);
      await assert.rejects(attachObservability(g.gateway, adminConfig({ token: "short" }), { env: {} }), /at least 16/);
    } finally {
      await g.stop();
    }
  });

  test("the bearer check accepts exactly the token", () => {
    const a = new BearerAuth("abcdefghijklmnop");
    assert.equal(a.check("Bearer abcdefghijklmnop"), true);
    assert.equal(a.check("bearer  abcdefghijklmnop "), true);
    for (const h of [undefined, "", "Bearer", "Bearer abcdefghijklmno", "Bearer abcdefghijklmnopq", "Basic abcdefghijklmnop", "Bearer abcdefghijklmnop extra"]) {
      assert.equal(a.check(h), false, String(h));
    }
  });
});

describe("readiness checks", () => {
  test("a check that hangs fails by its deadline; one that throws fails with its message", async () => {
    const r = new Readiness(50);
    r.add("hangs", () => new Promise<boolean>(() => {}));
    r.add("throws", () => {
      throw new Error("boom\nsecond line");
    });
    r.add("fine", () => true);
    const res = await withTimeout(r.run(), 2000, "readiness");
    assert.equal(res.ready, false);
    assert.deepEqual(
      res.checks.map((c) => [c.name, c.ok, c.detail]),
      [
        ["hangs", false, "timed out"],
        ["throws", false, "boom"],
        ["fine", true, undefined],
      ],
    );
  });
});
