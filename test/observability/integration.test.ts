/**
 * Observability wired into the gateway: byte totals from real relayed
 * traffic, guard limiter state through the admin API, and `portcullis run`
 * starting the admin listener from the [admin] section of its file.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Client, connectDoc, connectHead, probe, startOrigin, userHash, withTimeout } from "../gateway/fixtures.js";
import { TOKEN, sample, startObserved } from "./fixtures.js";
import { GatewayProcess } from "../helpers/gateway-process.js";
import { sleep } from "../helpers/wait.js";

describe("observability wired into the gateway", () => {
  test("relayed bytes are counted in totals per direction after real traffic", async () => {
    const origin = await startOrigin();
    const o = await startObserved(await connectDoc(), { processMetrics: false });
    try {
      const c = new Client(o.port, "127.0.0.80");
      await c.connected();
      c.write(connectHead(`127.0.0.1:${origin.port}`, { user: "alice", password: "s3cret" }));
      await c.until(() => c.text().includes("\r\n\r\n"), 5000, "CONNECT answer");
      const request = "GET / HTTP/1.1\r\nHost: origin\r\n\r\n";
      const head = c.received.length;
      c.write(request);
      await c.until(() => c.text().includes("hello from origin"), 5000, "origin answer");
      const answered = c.received.length - head;
      c.destroy();
      await withTimeout(
        (async () => {
          for (;;) {
            const t = (await o.call("GET", "/metrics")).text;
            if (sample(t, "portcullis_relayed_bytes_total", { listener: "egress", direction: "out" }) > 0) return;
            await sleep(20);
          }
        })(),
        5000,
        "bytes counted",
      );
      const text = (await o.call("GET", "/metrics")).text;
      assert.equal(sample(text, "portcullis_relayed_bytes_total", { listener: "egress", direction: "in" }), request.length);
      assert.equal(sample(text, "portcullis_relayed_bytes_total", { listener: "egress", direction: "out" }), answered);
    } finally {
      await o.stop();
      await origin.close();
    }
  });

  test("GET /v1/limits reads the guard's connection rate and per-IP cap without consuming", async () => {
    const o = await startObserved(await connectDoc({ guard: { connection_rate: { limit: 5, window: "1m" }, max_connections_per_ip: 3 } }), { processMetrics: false });
    try {
      const held = new Client(o.port, "127.0.0.81");
      await held.connected();
      const p = await probe(o.port, "127.0.0.81");
      assert.equal(p.served, true);
      let r = await o.call("GET", "/v1/limits/connection_rate/127.0.0.81");
      assert.equal(r.status, 200);
      assert.equal(r.json.remaining, 3);
      for (let i = 0; i < 5; i++) await o.call("GET", "/v1/limits/connection_rate/127.0.0.81");
      r = await o.call("GET", "/v1/limits/connection_rate/127.0.0.81");
      assert.equal(r.json.remaining, 3, "reading consumed nothing");
      r = await o.call("GET", "/v1/limits/max_connections_per_ip/127.0.0.81");
      assert.equal(r.json.held, 2);
      assert.equal(r.json.limit, 3);
      const off = await o.call("GET", "/v1/limits/prefix_connection_rate/127.0.0.81");
      assert.equal(off.status, 404);
      held.destroy();
      p.client.destroy();
    } finally {
      await o.stop();
    }
  });

  test("portcullis run starts the admin listener from [admin], reloads through it and stops on SIGTERM", async () => {
    const dir = mkdtempSync(join(tmpdir(), "portcullis-admin-"));
    try {
      const file = join(dir, "portcullis.toml");
      writeFileSync(
        file,
        [
          "[users]",
          `alice = "${await userHash("s3cret")}"`,
          "[[listener]]",
          'name = "egress"',
          'kind = "connect"',
          'bind = "127.0.0.1:0"',
          "[admin]",
          "enabled = true",
          'bind = "127.0.0.1:0"',
          'rate_limit = { strategy = "global", limit = 100, window = "1s", burst = 100 }',
          "",
        ].join("\n"),
      );
      const gw = new GatewayProcess(file, { PORTCULLIS_ADMIN_TOKEN: TOKEN });
      try {
        const url = await gw.adminUrl(20_000);
        const auth = { authorization: `Bearer ${TOKEN}` };
        assert.equal((await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5000) })).status, 200);
        assert.equal((await fetch(`${url}/v1/bans`, { signal: AbortSignal.timeout(5000) })).status, 401);
        assert.equal((await fetch(`${url}/v1/bans`, { headers: auth, signal: AbortSignal.timeout(5000) })).status, 200);
        const reload = await fetch(`${url}/v1/reload`, { method: "POST", headers: auth, signal: AbortSignal.timeout(5000) });
        assert.equal(reload.status, 200);
        writeFileSync(file, "[[listener]]\nname = 1\n");
        const bad = await fetch(`${url}/v1/reload`, { method: "POST", headers: auth, signal: AbortSignal.timeout(5000) });
        assert.equal(bad.status, 422);
        const body = (await bad.json()) as { error: { code: string; problems: string[] } };
        assert.equal(body.error.code, "reload_failed");
        assert.ok(body.error.problems.some((p) => p.includes("listener")));
        const metrics = await (await fetch(`${url}/metrics`, { headers: auth, signal: AbortSignal.timeout(5000) })).text();
        assert.equal(sample(metrics, "portcullis_reloads_total", { result: "ok" }), 1);
        assert.equal(sample(metrics, "portcullis_reloads_total", { result: "failed" }), 1);
      } finally {
        gw.child.kill("SIGTERM");
      }
      assert.equal(await gw.exit(10_000), 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
