/**
 * A request an http listener refuses (429) counts as an offence of the
 * client that sent it, on the memory store (decided at once) and on a shared
 * Redis store (decided after a round trip), and reaches the /v1/stats totals
 * per listener and per route.
 */
import { randomUUID } from "node:crypto";
import http from "node:http";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Gateway } from "../../src/gateway/gateway.js";
import { GatewayMetrics } from "../../src/metrics/gateway-metrics.js";
import { LogSink, withTimeout } from "../gateway/fixtures.js";
import { configFromToml, startUpstream, type Upstream } from "../features/http/gateway-helpers.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

function toml(upstreamPort: number, store: string): string {
  return `
[log]
format = "json"
${store}
[[listener]]
name = "api"
kind = "http"
bind = "127.0.0.1:0"
upstream = "http://127.0.0.1:${upstreamPort}"

[[http.route]]
name = "token"
match = "/token"
limit = { algorithm = "fixed_window", permit_limit = 1, window = "00:01:00", queue_limit = 0, key = "ip" }
`;
}

function get(port: number, from: string, path: string): Promise<number> {
  return withTimeout(
    new Promise<number>((resolve, reject) => {
      const req = http.get({ host: "127.0.0.1", port, path, localAddress: from, agent: false }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.on("error", reject);
    }),
    5000,
    `GET ${path}`,
  );
}

describe("http refusals in the offender table", () => {
  let up: Upstream;
  before(async () => {
    up = await startUpstream();
  });
  after(async () => {
    await up.close();
  });

  const stores: Array<[string, string]> = [
    ["memory", ""],
    ["redis", `[store]\nkind = "redis"\nurl = "${REDIS_URL}"\nprefix = "offenders-${randomUUID()}:"\non_failure = "closed"\n`],
  ];
  for (const [name, store] of stores) {
    test(`on the ${name} store the refused client is named, with kind http`, async () => {
      const gateway = await Gateway.open(configFromToml(toml(up.port, store)), { logDestination: new LogSink() });
      const metrics = new GatewayMetrics(gateway, { processMetrics: false });
      try {
        const port = (await gateway.start()).find((b) => b.name === "api")!.port;
        const from = name === "memory" ? "127.0.0.84" : "127.0.0.85";
        const statuses = [];
        for (let i = 0; i < 3; i++) statuses.push(await get(port, from, "/token"));
        assert.deepEqual(statuses, [200, 429, 429]);
        // A request the route does not limit is no offence.
        assert.equal(await get(port, "127.0.0.86", "/other"), 200);
        const top = metrics.offenders.top(10, 300_000);
        assert.deepEqual(
          top.map((o) => [o.key, o.count, o.kinds]),
          [[from, 2, ["http"]]],
        );
        const stats = await metrics.stats();
        assert.deepEqual(stats.http.byListener, { api: 2 });
        assert.deepEqual(stats.http.byRoute, [{ route: "token", limiter: "token", count: 2 }]);
        assert.equal(stats.http.rejections, 2);
      } finally {
        metrics.close();
        await gateway.stop();
      }
    });
  }
});
