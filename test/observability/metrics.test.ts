/**
 * Metrics after real traffic through a real gateway: every series moves as
 * it should, no address or user ever becomes a label, and the exposition
 * passes `promtool check metrics`.
 */
import { execFile } from "node:child_process";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { register as globalRegistry } from "prom-client";
import { Client, connectDoc, connectHead, type Origin, probe, startOrigin } from "../gateway/fixtures.js";
import { waitUntil } from "../helpers/wait.js";
import { type Observed, sample, startObserved } from "./fixtures.js";

const AUTH = { user: "alice", password: "s3cret" };

async function metricsText(o: Observed): Promise<string> {
  const r = await o.call("GET", "/metrics");
  assert.equal(r.status, 200);
  return r.text;
}

/** Scrapes until `pred` holds on a fresh scrape (bounded); the scrape that held. */
function scrapeUntil(o: Observed, pred: (text: string) => boolean, what: string, ms = 5000): Promise<string> {
  return waitUntil(async () => {
    const text = await metricsText(o);
    return pred(text) ? text : undefined;
  }, { timeoutMs: ms, intervalMs: 20, message: what });
}

/** A tunnel through the connect listener to the origin; resolves with the open client after the origin answered. */
async function tunnel(o: Observed, origin: Origin, from: string): Promise<Client> {
  const c = new Client(o.port, from);
  await c.connected();
  c.write(connectHead(`127.0.0.1:${origin.port}`, AUTH));
  await c.until(() => c.text().includes("\r\n\r\n"), 5000, "CONNECT answer");
  assert.match(c.text(), /^HTTP\/1\.1 200/);
  c.write("GET / HTTP/1.1\r\nHost: origin\r\nConnection: keep-alive\r\n\r\n");
  await c.until(() => c.text().includes("hello from origin"), 5000, "origin answer");
  return c;
}

function promtool(args: string[], stdin?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = execFile("promtool", args, { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` });
    });
    if (stdin !== undefined) p.stdin!.end(stdin);
  });
}

describe("series preset at start", () => {
  test("every rejection the gateway can make is a series at 0 before any traffic, so increase() sees the first burst", async () => {
    const o = await startObserved(await connectDoc(), { processMetrics: false });
    try {
      const text = await o.obs.metrics.expose();
      const pairs: Array<[string, string]> = [
        ["deny_list", "deny_list"],
        ["ban", "banned"],
        ["max_connections", "concurrency_limit"],
        ["max_connections_per_ip", "concurrency_limit"],
        ["connection_rate", "rate_limited"],
        ["prefix_connection_rate", "rate_limited"],
        ["auth", "bad_credentials"],
        ["auth", "malformed"],
        ["auth", "backoff"],
        ["auth", "banned"],
        ["auth", "queue_full"],
        ["destination_policy", "not_permitted"],
      ];
      for (const [limiter, reason] of pairs) assert.equal(sample(text, "portcullis_rejections_total", { limiter, reason }), 0, `${limiter}/${reason}`);
      assert.equal(sample(text, "portcullis_long_retry_after_total", { limiter: "http" }), 0);
      assert.equal(sample(text, "portcullis_admin_rate_limited_total", { endpoint: "GET /v1/bans" }), 0);
      assert.equal(sample(text, "portcullis_admin_rate_limited_total", { endpoint: "unmatched" }), 0);
    } finally {
      await o.stop();
    }
  });
});

describe("metrics after real traffic", () => {
  let origin: Origin;
  let o: Observed;
  before(async () => {
    origin = await startOrigin();
    o = await startObserved(await connectDoc({ guard: { ban: { failures: 2 }, max_auth_attempts: 5 } }));
  });
  after(async () => {
    await o?.stop();
    await origin?.close();
  });

  test("an admitted tunnel counts a connection, an auth accept and a policy decision; closing it lowers the gauge", async () => {
    const c = await tunnel(o, origin, "127.0.0.2");
    let text = await metricsText(o);
    assert.equal(sample(text, "portcullis_connections_active", { listener: "egress" }), 1);
    assert.equal(sample(text, "portcullis_connections_total", { listener: "egress", result: "accepted" }), 1);
    assert.equal(sample(text, "portcullis_auth_attempts_total", { listener: "egress", result: "accept" }), 1);
    assert.equal(sample(text, "portcullis_decisions_total", { limiter: "destination_policy", result: "allowed" }), 1);
    // Each guard rule that is on allowed it.
    for (const limiter of ["ban", "max_connections", "max_connections_per_ip"]) assert.equal(sample(text, "portcullis_decisions_total", { limiter, result: "allowed" }), 1, limiter);
    assert.equal(sample(text, "portcullis_decisions_total", { limiter: "connection_rate", result: "allowed" }), 0, "connection_rate is off");
    c.destroy();
    text = await scrapeUntil(o, (t) => sample(t, "portcullis_connections_active", { listener: "egress" }) === 0, "gauge back to 0");
    assert.equal(sample(text, "portcullis_connections_total", { listener: "egress", result: "accepted" }), 1);
  });

  test("failed logins count auth rejections and start a ban; the banned address is refused by the ban limiter", async () => {
    const c = new Client(o.port, "127.0.0.3");
    await c.connected();
    const bad = connectHead(`127.0.0.1:${origin.port}`, { user: "alice", password: "wrong" });
    c.write(bad);
    await c.until(() => c.text().includes("407"), 5000, "first 407");
    c.write(bad);
    await c.waitClosed();
    let text = await scrapeUntil(o, (t) => sample(t, "portcullis_bans_total", { reason: "auth_failures" }) === 1, "ban counted");
    assert.equal(sample(text, "portcullis_auth_attempts_total", { listener: "egress", result: "reject" }), 2);
    assert.equal(sample(text, "portcullis_rejections_total", { limiter: "auth", reason: "bad_credentials" }), 2);
    assert.equal(sample(text, "portcullis_decisions_total", { limiter: "auth", result: "rejected" }), 2);
    assert.equal(sample(text, "portcullis_bans_active"), 1);
    assert.equal(sample(text, "portcullis_bans_total", { reason: "manual" }), 0);

    const p = await probe(o.port, "127.0.0.3");
    p.client.destroy();
    assert.equal(p.served, false);
    text = await scrapeUntil(o, (t) => sample(t, "portcullis_rejections_total", { limiter: "ban", reason: "banned" }) === 1, "ban refusal counted");
    assert.equal(sample(text, "portcullis_decisions_total", { limiter: "ban", result: "rejected" }), 1);
    assert.equal(sample(text, "portcullis_connections_total", { listener: "egress", result: "refused" }), 1);
    // Two rejected logins and one refusal, all from one client.
    assert.equal(sample(text, "portcullis_top_offender_events", { window: "5m" }), 3);
    assert.equal(sample(text, "portcullis_top_offender_events", { window: "1h" }), 3);

    o.gateway.unban("127.0.0.3", "manual");
    text = await metricsText(o);
    assert.equal(sample(text, "portcullis_bans_active"), 0);
    assert.equal(sample(text, "portcullis_unbans_total", { reason: "manual" }), 1);
  });

  test("no address, user or destination appears anywhere in the exposition", async () => {
    const text = await metricsText(o);
    assert.doesNotMatch(text, /127\.0\.0\./);
    assert.doesNotMatch(text, /alice/);
    assert.doesNotMatch(text, new RegExp(`:${origin.port}\\b`));
  });

  test("a reload is counted", async () => {
    await o.gateway.reload(o.gateway.config);
    const text = await metricsText(o);
    assert.equal(sample(text, "portcullis_reloads_total", { result: "ok" }), 1);
    assert.equal(sample(text, "portcullis_reloads_total", { result: "failed" }), 0);
  });

  test("the exposition (with process metrics) passes promtool check metrics", async () => {
    const text = await metricsText(o);
    assert.match(text, /^process_cpu_user_seconds_total /m);
    assert.match(text, /^nodejs_eventloop_lag_seconds /m);
    const r = await promtool(["check", "metrics"], text);
    assert.equal(r.code, 0, r.out);
  });
});

describe("guard limiters", () => {
  test("a per-IP cap and a connection rate count their rejections, and every rule before them counts an allow", async () => {
    const o = await startObserved(await connectDoc({ guard: { max_connections_per_ip: 1, connection_rate: { limit: 3, window: "1m" } } }), { processMetrics: false });
    try {
      const held = new Client(o.port, "127.0.0.4");
      await held.connected();
      const second = await probe(o.port, "127.0.0.4");
      second.client.destroy();
      assert.equal(second.served, false);
      let text = await scrapeUntil(o, (t) => sample(t, "portcullis_rejections_total", { limiter: "max_connections_per_ip", reason: "concurrency_limit" }) === 1, "per-IP refusal");
      assert.equal(sample(text, "portcullis_decisions_total", { limiter: "max_connections_per_ip", result: "rejected" }), 1);
      assert.equal(sample(text, "portcullis_decisions_total", { limiter: "max_connections", result: "allowed" }), 2);
      held.destroy();
      await scrapeUntil(o, (t) => sample(t, "portcullis_connections_active", { listener: "egress" }) === 0, "held connection released");

      for (let i = 0; i < 3; i++) {
        const p = await probe(o.port, "127.0.0.5");
        p.client.destroy();
        assert.equal(p.served, true, `connection ${i + 1} is within the rate`);
        // The per-IP cap is 1: wait until the gateway has seen this one end.
        await scrapeUntil(o, (t) => sample(t, "portcullis_connections_active", { listener: "egress" }) === 0, "connection released");
      }
      const fourth = await probe(o.port, "127.0.0.5");
      fourth.client.destroy();
      assert.equal(fourth.served, false);
      text = await scrapeUntil(o, (t) => sample(t, "portcullis_rejections_total", { limiter: "connection_rate", reason: "rate_limited" }) === 1, "rate refusal");
      assert.equal(sample(text, "portcullis_decisions_total", { limiter: "connection_rate", result: "rejected" }), 1);
      // .4's first connection and .5's three passed the rate.
      assert.equal(sample(text, "portcullis_decisions_total", { limiter: "connection_rate", result: "allowed" }), 4);
      assert.equal(sample(text, "portcullis_connections_total", { listener: "egress", result: "refused" }), 2);
    } finally {
      await o.stop();
    }
  });

  test("the deny list decides first; allow-listed addresses skip every rule and are counted under allow_list", async () => {
    const o = await startObserved(await connectDoc({ guard: { deny: ["127.0.0.10/32"], allow: ["127.0.0.9/32"] } }), { processMetrics: false });
    try {
      const denied = await probe(o.port, "127.0.0.10");
      denied.client.destroy();
      assert.equal(denied.served, false);
      const allowed = await probe(o.port, "127.0.0.9");
      allowed.client.destroy();
      assert.equal(allowed.served, true);
      const plain = await probe(o.port, "127.0.0.11");
      plain.client.destroy();
      const text = await scrapeUntil(o, (t) => sample(t, "portcullis_connections_total", { listener: "egress", result: "accepted" }) === 2, "two admitted");
      assert.equal(sample(text, "portcullis_rejections_total", { limiter: "deny_list", reason: "deny_list" }), 1);
      assert.equal(sample(text, "portcullis_decisions_total", { limiter: "deny_list", result: "rejected" }), 1);
      assert.equal(sample(text, "portcullis_decisions_total", { limiter: "allow_list", result: "allowed" }), 1);
      // Only the plain address went through the deny list and the rules after it.
      assert.equal(sample(text, "portcullis_decisions_total", { limiter: "deny_list", result: "allowed" }), 1);
      assert.equal(sample(text, "portcullis_decisions_total", { limiter: "ban", result: "allowed" }), 1);
    } finally {
      await o.stop();
    }
  });

  test("a shadow limit counts shadow rejections, never enforced ones", async () => {
    const o = await startObserved(await connectDoc({ guard: { max_connections_per_ip: { limit: 1, shadow: true } } }), { processMetrics: false });
    try {
      const a = new Client(o.port, "127.0.0.6");
      await a.connected();
      const b = await probe(o.port, "127.0.0.6");
      assert.equal(b.served, true);
      const text = await scrapeUntil(o, (t) => sample(t, "portcullis_shadow_rejections_total", { limiter: "max_connections_per_ip", reason: "concurrency_limit" }) === 1, "shadow counted");
      assert.equal(sample(text, "portcullis_rejections_total", { limiter: "max_connections_per_ip", reason: "concurrency_limit" }), 0);
      assert.equal(sample(text, "portcullis_connections_total", { listener: "egress", result: "accepted" }), 2);
      a.destroy();
      b.client.destroy();
    } finally {
      await o.stop();
    }
  });
});

describe("events from the relay, shapers and store", () => {
  test("byte totals, throttle time, store latency and fallback feed their series; bad values and unknown labels are ignored", async () => {
    const o = await startObserved(await connectDoc(), { processMetrics: false });
    try {
      // These events are emitted on the gateway's emitter by the relay, the shapers and the store.
      const ee = o.gateway.events as unknown as NodeJS.EventEmitter;
      ee.emit("bytes", { listener: "egress", direction: "in", bytes: 1200 });
      ee.emit("bytes", { listener: "egress", direction: "out", bytes: 34_000 });
      ee.emit("bytes", { listener: "egress", direction: "sideways", bytes: 5 });
      ee.emit("bytes", { listener: "egress", direction: "in", bytes: Number.NaN });
      ee.emit("throttle", { direction: "out", seconds: 0.25, remote_addr: "127.0.0.7" });
      ee.emit("throttle", { direction: "out", seconds: -1 });
      ee.emit("store_latency", { seconds: 0.0007 });
      ee.emit("store_fallback", { mode: "insurance" });
      let text = await metricsText(o);
      assert.equal(sample(text, "portcullis_relayed_bytes_total", { listener: "egress", direction: "in" }), 1200);
      assert.equal(sample(text, "portcullis_relayed_bytes_total", { listener: "egress", direction: "out" }), 34_000);
      assert.doesNotMatch(text, /sideways/);
      assert.equal(sample(text, "portcullis_throttle_seconds_total", { direction: "out" }), 0.25);
      assert.equal(sample(text, "portcullis_store_latency_seconds_count"), 1);
      assert.equal(sample(text, "portcullis_store_latency_seconds_bucket", { le: "0.001" }), 1);
      assert.equal(sample(text, "portcullis_store_latency_seconds_bucket", { le: "0.0005" }), 0);
      assert.equal(sample(text, "portcullis_store_fallback", { mode: "insurance" }), 1);
      assert.equal(sample(text, "portcullis_top_offender_events", { window: "5m" }), 1);
      // A refusal by a rule the metrics do not know (with a free-form name and reason) counts under "other".
      o.gateway.events.emit("refused", { listener: "egress", remote_addr: "127.0.0.7", limiter: "route:/login", reason: "because", shadow: false });
      text = await metricsText(o);
      assert.equal(sample(text, "portcullis_rejections_total", { limiter: "other", reason: "other" }), 1);
      assert.doesNotMatch(text, /\/login|because/);
      ee.emit("store_fallback", { mode: "none" });
      text = await metricsText(o);
      assert.equal(sample(text, "portcullis_store_fallback", { mode: "insurance" }), 0);
    } finally {
      await o.stop();
    }
  });
});

describe("one registry per gateway", () => {
  test("two gateways keep separate counts and leave the global registry alone", async () => {
    const a = await startObserved(await connectDoc({ guard: { ban: { failures: 1 } } }), { processMetrics: false });
    const b = await startObserved(await connectDoc(), { processMetrics: false });
    try {
      const c = new Client(a.port, "127.0.0.8");
      await c.connected();
      c.write(connectHead("127.0.0.1:1", { user: "alice", password: "nope" }));
      await c.waitClosed();
      const ta = await scrapeUntil(a, (t) => sample(t, "portcullis_bans_total", { reason: "auth_failures" }) === 1, "ban on a");
      assert.equal(sample(ta, "portcullis_auth_attempts_total", { listener: "egress", result: "reject" }), 1);
      const tb = await metricsText(b);
      assert.equal(sample(tb, "portcullis_auth_attempts_total", { listener: "egress", result: "reject" }), 0);
      assert.equal(sample(tb, "portcullis_bans_total", { reason: "auth_failures" }), 0);
      assert.doesNotMatch(await globalRegistry.metrics(), /portcullis_/);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

describe("alert rules", () => {
  test("deploy/prometheus/alerts.yml passes promtool check rules, and its unit tests pass", async () => {
    const check = await promtool(["check", "rules", "deploy/prometheus/alerts.yml"]);
    assert.equal(check.code, 0, check.out);
    assert.match(check.out, /SUCCESS: \d+ rules found/);
    const unit = await promtool(["test", "rules", "deploy/prometheus/alerts.test.yml"]);
    assert.equal(unit.code, 0, unit.out);
  });

  test("every metric an alert or the Grafana dashboard uses is one the gateway exports", async () => {
    const o = await startObserved(await connectDoc(), { processMetrics: false });
    try {
      const text = await metricsText(o);
      const exported = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)/gm)].flatMap((m) => (m[2] === "histogram" ? [`${m[1]}_bucket`, `${m[1]}_sum`, `${m[1]}_count`] : [m[1]!])));
      const { readFile } = await import("node:fs/promises");
      for (const file of ["deploy/prometheus/alerts.yml", "deploy/grafana/portcullis.json"]) {
        const used = new Set((await readFile(file, "utf8")).match(/portcullis_[a-z_]+/g) ?? []);
        assert.ok(used.size > 0, file);
        for (const name of used) assert.ok(exported.has(name), `${file} uses ${name}, which is not exported`);
      }
    } finally {
      await o.stop();
    }
  });
});
