import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/core/clock.js";
import { Client, connectDoc, connectHead, curl, probe, startGateway, startOrigin } from "./fixtures.js";
import { sleep } from "../helpers/wait.js";

async function session(auditDestinations: boolean, format: "json" | "logfmt" = "json") {
  const origin = await startOrigin();
  const clock = new ManualClock(0, Date.UTC(2026, 0, 1));
  const gw = await startGateway(
    await connectDoc({ log: { format, audit_destinations: auditDestinations }, guard: { max_connections_per_ip: 3, max_auth_attempts: 5, ban: { failures: 2, backoff_after: 5 } } }),
    { clock },
  );
  try {
    const ok = await curl(["-p", "-x", `http://alice:s3cret@127.0.0.1:${gw.port}`, `http://127.0.0.1:${origin.port}/`]);
    assert.equal(ok.code, 0, ok.stderr);
    const c = new Client(gw.port, "127.0.12.1");
    await c.connected();
    for (let i = 0; i < 2; i++) {
      const before = (c.text().match(/407/g) ?? []).length;
      c.write(connectHead(`127.0.0.1:${origin.port}`, { user: "mallory", password: "guess" }));
      await c.until(() => (c.text().match(/407/g) ?? []).length > before || c.closed, 5000, "407");
    }
    await c.waitClosed();
    await probe(gw.port, "127.0.12.1");
    for (let i = 0; i < 50 && gw.gateway.openConnections > 0; i++) await sleep(10);
    return { lines: gw.log.lines, records: gw.log.records(), dest: `127.0.0.1:${origin.port}`, originPort: origin.port };
  } finally {
    await gw.stop();
    await origin.close();
  }
}

describe("gateway log", () => {
  test("required fields on every event", async () => {
    const { records } = await session(false);
    const of = (e: string) => records.filter((r) => r.event === e);
    const open = of("conn_open")[0]!;
    assert.deepEqual([typeof open.remote_addr, open.transport, open.listener], ["string", "tcp", "egress"]);
    const accept = of("auth").find((r) => r.result === "accept")!;
    assert.equal(accept.user, "alice");
    assert.equal(accept.remote_addr, "127.0.0.1");
    const reject = of("auth").find((r) => r.result === "reject")!;
    assert.deepEqual([reject.user, reject.reason, reject.remote_addr], ["mallory", "bad_credentials", "127.0.12.1"]);
    const close = of("conn_close")[0]!;
    assert.equal(typeof close.duration_ms, "number");
    const ban = of("ban")[0]!;
    assert.deepEqual([ban.remote_addr, ban.failures, ban.until], ["127.0.12.1", 2, "2026-01-01T00:10:00.000Z"]);
    const limited = of("limited")[0]!;
    assert.deepEqual([limited.remote_addr, limited.limiter, limited.reason], ["127.0.12.1", "ban", "banned"]);
  });

  test("destinations, resolutions and byte counts are absent by default", async () => {
    const { lines, originPort } = await session(false);
    assert.ok(lines.length > 5);
    for (const l of lines) {
      assert.ok(!l.includes(String(originPort)), `no destination in ${l}`);
      assert.ok(!/bytes|destination/i.test(l), `no byte counts or destinations in ${l}`);
    }
    assert.equal(lines.filter((l) => l.includes('"audit"')).length, 0);
  });

  test("with audit_destinations a separate audit event carries the destination", async () => {
    const { records, dest } = await session(true);
    const audits = records.filter((r) => r.event === "audit");
    assert.equal(audits.length, 1);
    assert.equal(audits[0]!.destination, dest);
    assert.equal(audits[0]!.user, "alice");
    // Only the audit event carries it.
    assert.equal(records.filter((r) => JSON.stringify(r).includes(dest)).length, 1);
  });

  test("logfmt lines carry the same stable key=value fields", async () => {
    const { lines } = await session(false, "logfmt");
    assert.ok(lines.some((l) => /event=conn_open/.test(l) && /remote_addr=127\.0\.0\.1/.test(l) && /transport=tcp/.test(l) && /listener=egress/.test(l)));
    assert.ok(lines.some((l) => /event=auth/.test(l) && /result=reject/.test(l) && /user=mallory/.test(l) && /reason=bad_credentials/.test(l)));
    assert.ok(lines.some((l) => /event=ban/.test(l) && /remote_addr=127\.0\.12\.1/.test(l) && /failures=2/.test(l) && /until=/.test(l)));
    assert.ok(lines.some((l) => /event=conn_close/.test(l) && /duration_ms=\d+/.test(l)));
  });
});
