/**
 * `portcullis run` with its Redis down at start: it starts anyway, in the
 * configured failure mode, says so in one log line, reports it on /readyz
 * and in the metrics, and moves to Redis once Redis answers. The Redis is a
 * throw-away redis-server on a free port that the test starts late.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type net from "node:net";
import { type Origin, startEcho, userHash } from "../gateway/fixtures.js";
import { ThrowawayRedis, uniquePrefix } from "../redis/helpers.js";
import { FleetGateway, configFiles, fleetToml, relayConnect } from "./fleet-helpers.js";
import { waitUntil } from "../helpers/wait.js";

let echo: Origin;
let aliceHash: string;
const held: net.Socket[] = [];

before(async () => {
  echo = await startEcho();
  aliceHash = await userHash("s3cret");
});

after(async () => {
  for (const s of held) s.destroy();
  await echo.close();
});

async function readyz(gw: FleetGateway): Promise<{ status: number; store: string | undefined }> {
  const res = await fetch(`${gw.admin}/readyz`, { signal: AbortSignal.timeout(5000) });
  const body = (await res.json()) as { checks: { name: string; detail?: string }[] };
  return { status: res.status, store: body.checks.find((c) => c.name === "store")?.detail };
}

async function metric(gw: FleetGateway, name: string): Promise<number> {
  const res = await fetch(`${gw.admin}/metrics`, { headers: { authorization: `Bearer fleet-test-token-0123456789` }, signal: AbortSignal.timeout(5000) });
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(await res.text());
  return m ? Number(m[1]) : NaN;
}

for (const mode of ["insurance", "closed"] as const) {
  describe(`Redis down at start, on_failure = "${mode}"`, () => {
    test("starts in the failure mode, says so once, and moves to Redis when it answers", async () => {
      const redis = await ThrowawayRedis.create();
      await redis.kill();
      const cfg = await configFiles([
        fleetToml({ redisUrl: redis.url, prefix: uniquePrefix("down"), echoPort: echo.port, aliceHash, store: [`on_failure = "${mode}"`] }),
      ]);
      let gw: FleetGateway | undefined;
      try {
        gw = await FleetGateway.start(cfg.files[0]!);
        assert.match(gw.proc.stderr, new RegExp(`store redis \\(prefix "[^"]+"\\): unavailable, deciding by ${mode}`));
        await gw.proc.waitFor(() => gw!.proc.count("store: redis unavailable") === 1, "the log line of the failure mode");
        const r = await readyz(gw);
        assert.equal(r.store, mode);
        assert.equal(r.status, mode === "closed" ? 503 : 200, "closed refuses everything: not ready");
        const served = await relayConnect(gw.relay, "127.0.36.1", held);
        assert.equal(served, mode === "closed" ? "closed" : "open", `${mode} decides while Redis is down`);
        assert.ok((await metric(gw, "portcullis_store_fallback_decisions_total")) > 0, "the fallback is counted");
        assert.equal(await metric(gw, 'portcullis_store_fallback{mode="' + mode + '"}'), 1);

        await redis.start();
        await gw.proc.waitFor(() => gw!.proc.count("store: back on redis") === 1, "back on Redis", 10_000);
        assert.equal(gw.proc.count("store: redis unavailable"), 1, "one line for the outage");
        assert.deepEqual(await readyz(gw), { status: 200, store: "redis" });
        await waitUntil(async () => (await relayConnect(gw!.relay, "127.0.36.2", held)) === "open", { timeoutMs: 5000, intervalMs: 25, message: "served through Redis" });
      } finally {
        await gw?.stop();
        await redis.kill();
        await cfg.remove();
      }
    });
  });
}
