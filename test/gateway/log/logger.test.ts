import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ManualClock } from "../../../src/core/clock.js";
import { formatLogfmt, LogfmtDestination, logfmtValue } from "../../../src/gateway/log/logfmt.js";
import { createGatewayLogger } from "../../../src/gateway/log/logger.js";
import { isPrivateField } from "../../../src/gateway/log/privacy.js";
import { memorySink, parseLogfmt } from "./sink.js";

const WALL = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

function setup(format: "json" | "logfmt", extra: { auditDestinations?: boolean; level?: string } = {}) {
  const sink = memorySink();
  const clock = new ManualClock(0, WALL);
  const log = createGatewayLogger({ format, destination: sink.stream, clock, ...extra });
  const records = (): Array<Record<string, unknown>> =>
    sink.lines().map((l) => (format === "json" ? (JSON.parse(l) as Record<string, unknown>) : parseLogfmt(l)));
  return { sink, clock, log, records };
}

describe("logfmt values", () => {
  test("the destination turns each JSON line into one logfmt line, keeping a non-JSON line as msg", () => {
    const sink = memorySink();
    const d = new LogfmtDestination(sink.stream);
    d.write('{"level":"info","ts":"t","event":"x","a":1}\n{"b":"c d"}\nnot json\n');
    assert.deepEqual(sink.lines(), ["ts=t level=info event=x a=1", 'b="c d"', 'msg="not json"']);
  });

  test("plain values are bare, others quoted and escaped", () => {
    assert.equal(logfmtValue("bob"), "bob");
    assert.equal(logfmtValue(42), "42");
    assert.equal(logfmtValue("two words"), '"two words"');
    assert.equal(logfmtValue("a=b"), '"a=b"');
    assert.equal(logfmtValue('say "hi"'), '"say \\"hi\\""');
    assert.equal(logfmtValue("back\\slash"), '"back\\\\slash"');
    assert.equal(logfmtValue(""), '""');
    assert.equal(logfmtValue("a\nb\rc\td"), '"a\\nb\\rc\\td"');
    assert.equal(logfmtValue("x\u0000y\u001bz\u0085w\u2028v"), '"x\\u0000y\\u001bz\\u0085w\\u2028v"');
    assert.equal(logfmtValue("naïve"), '"naïve"');
  });

  test("records keep the requested order and drop undefined fields", () => {
    assert.equal(formatLogfmt({ b: 1, a: "x", ts: "t", gone: undefined }, ["ts"]), "ts=t b=1 a=x");
  });
});

for (const format of ["logfmt", "json"] as const) {
  describe(`gateway logger (${format})`, () => {
    test("each event is one INFO line with ts, level, event and its fields", () => {
      const { log, records, clock } = setup(format);
      log.connOpen({ remote_addr: "192.0.2.1", transport: "tls", listener: "egress" });
      clock.advance(1500);
      log.auth({ remote_addr: "192.0.2.1", user: "alice", key_fingerprint: "ab12", result: "accept", listener: "egress" });
      log.auth({ remote_addr: "192.0.2.2", user: "mallory", result: "reject", reason: "bad_password", listener: "egress" });
      log.connClose({ remote_addr: "192.0.2.1", duration_ms: 1234.6, listener: "egress" });
      log.limited({ remote_addr: "192.0.2.3", limiter: "conn_rate", reason: "rate", listener: "egress" });
      log.ban({ remote_addr: "192.0.2.2", until: WALL + 600_000, failures: 10 });
      log.unban({ remote_addr: "192.0.2.2", reason: "admin" });
      const r = records();
      assert.deepEqual(
        r.map((x) => x.event),
        ["conn_open", "auth", "auth", "conn_close", "limited", "ban", "unban"],
      );
      for (const x of r) assert.equal(x.level, "info");
      assert.equal(r[0]!.ts, "2026-01-02T03:04:05.678Z");
      assert.equal(r[1]!.ts, "2026-01-02T03:04:07.178Z");
      assert.equal(r[0]!.transport, "tls");
      assert.equal(r[1]!.user, "alice");
      assert.equal(r[1]!.key_fingerprint, "ab12");
      assert.equal(r[1]!.result, "accept");
      assert.equal(r[2]!.result, "reject");
      assert.equal(r[2]!.reason, "bad_password");
      assert.equal(String(r[3]!.duration_ms), "1235");
      assert.equal(r[4]!.limiter, "conn_rate");
      assert.equal(r[5]!.until, "2026-01-02T03:14:05.678Z");
      assert.equal(String(r[5]!.failures), "10");
      assert.equal(r[6]!.reason, "admin");
    });

    test("a hostile user name stays inside its one field on its one line", () => {
      const { log, sink, records } = setup(format);
      const evil = 'x" result=reject remote_addr=6.6.6.6\nts=2026-01-01T00:00:00.000Z level=info event=auth result=reject remote_addr=7.7.7.7\u2028';
      log.auth({ remote_addr: "192.0.2.9", user: evil, result: "accept", listener: "l" });
      assert.equal(sink.lines().length, 1);
      const [r] = records();
      assert.equal(r!.user, evil);
      assert.equal(r!.remote_addr, "192.0.2.9");
      assert.equal(r!.result, "accept");
    });

    test("remote addresses are written in canonical form", () => {
      const { log, records } = setup(format);
      log.auth({ remote_addr: "::ffff:198.51.100.4", result: "reject", listener: "l" });
      log.connOpen({ remote_addr: "2001:DB8:0:0::1", transport: "tcp", listener: "l" });
      assert.deepEqual(
        records().map((r) => r.remote_addr),
        ["198.51.100.4", "2001:db8::1"],
      );
    });

    test("no destination, DNS answer or byte count outside the audit event", () => {
      const { log, sink } = setup(format, { auditDestinations: true });
      const leaky = {
        remote_addr: "192.0.2.1",
        transport: "tcp",
        listener: "l",
        destination: "secret.example:443",
        dest_host: "secret.example",
        resolved: "203.0.113.99",
        dns_answer: "203.0.113.99",
        bytes_in: 987654,
        bytes: 987654,
      };
      log.connOpen(leaky as never);
      log.connClose({ ...leaky, duration_ms: 5 } as never);
      log.info("relay finished", { destination: "secret.example:443", bytes_out: 987654, upstream_addr: "203.0.113.99", ok: true });
      log.warn("slow", { host: "secret.example", port: 443 });
      const text = sink.text();
      for (const secret of ["secret.example", "203.0.113.99", "987654"]) assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
      assert.match(text, /relay finished/);
      assert.match(text, /ok.{1,3}true/);
    });

    test("audit events carry the destination only when auditing is on", () => {
      const off = setup(format);
      off.log.audit({ remote_addr: "192.0.2.1", user: "alice", destination: "api.example.com:443", listener: "l" });
      assert.equal(off.sink.text(), "");
      const on = setup(format, { auditDestinations: true });
      on.log.audit({ remote_addr: "192.0.2.1", user: "alice", destination: "api.example.com:443", listener: "l" });
      const [r] = on.records();
      assert.equal(r!.event, "audit");
      assert.equal(r!.destination, "api.example.com:443");
      assert.equal(r!.user, "alice");
    });

    test("free messages cannot pose as events, and errors lose their stack", () => {
      const { log, records } = setup(format);
      log.info("hello", { event: "auth", result: "reject", level: "error", ts: "x", listener: "l" });
      log.error("failed", { err: new Error("boom") });
      const [a, b] = records();
      assert.equal(a!.event, undefined);
      assert.equal(a!.level, "info");
      assert.equal(a!.msg, "hello");
      assert.notEqual(a!.ts, "x");
      assert.equal(b!.level, "error");
      assert.equal(b!.err, "boom");
    });

    test("the level option filters", () => {
      const { log, records } = setup(format, { level: "warn" });
      log.connOpen({ remote_addr: "192.0.2.1", transport: "tcp", listener: "l" });
      log.info("quiet");
      log.warn("loud");
      assert.deepEqual(
        records().map((r) => r.msg),
        ["loud"],
      );
    });
  });
}

test("connection lines are byte for byte what the generic formatting writes, for odd names and addresses", () => {
  const ts = new Date(WALL).toISOString();
  const cases: Array<{ remote: string; canonical: string; listener: string; transport: string; duration: number }> = [
    { remote: "192.0.2.1", canonical: "192.0.2.1", listener: "egress", transport: "tcp", duration: 0 },
    { remote: "::ffff:198.51.100.7", canonical: "198.51.100.7", listener: 'we"ird name\n', transport: "tls", duration: 1234.6 },
    { remote: "2001:DB8:0:0::1", canonical: "2001:db8::1", listener: "l=1\u2028x", transport: "tcp", duration: 7 },
    // Not an address: kept as given, quoted and escaped like any client-controlled value.
    { remote: 'not "an" address', canonical: 'not "an" address', listener: "naïve", transport: "tcp", duration: 3 },
  ];
  for (const c of cases) {
    const listener = c.listener;
    const open = { level: "info", ts, event: "conn_open", remote_addr: c.canonical, listener, transport: c.transport };
    const close = { level: "info", ts, event: "conn_close", remote_addr: c.canonical, listener, duration_ms: Math.round(c.duration) };
    for (const format of ["json", "logfmt"] as const) {
      const { log, sink } = setup(format);
      log.connOpen({ remote_addr: c.remote, transport: c.transport, listener });
      log.connClose({ remote_addr: c.remote, duration_ms: c.duration, listener });
      const expected = [open, close].map((r) => (format === "json" ? JSON.stringify(r) : formatLogfmt(r, ["ts", "level", "event"])));
      assert.deepEqual(sink.lines(), expected, `${format}: ${c.remote} ${c.listener}`);
    }
  }
});

test("a duration that is not a number still makes one conn_close line", () => {
  const { log, records } = setup("json");
  log.connClose({ remote_addr: "192.0.2.1", duration_ms: Number.NaN, listener: "l" });
  assert.deepEqual(records(), [{ level: "info", ts: new Date(WALL).toISOString(), event: "conn_close", remote_addr: "192.0.2.1", listener: "l", duration_ms: null }]);
});

test("logfmt lines start with ts, level, event", () => {
  const { log, sink } = setup("logfmt");
  log.auth({ remote_addr: "192.0.2.1", user: "bob", result: "reject", listener: "l" });
  assert.match(sink.lines()[0]!, /^ts=2026-01-02T03:04:05\.678Z level=info event=auth result=reject remote_addr=192\.0\.2\.1 /);
});

test("bad options are refused with the key named", () => {
  assert.throws(() => createGatewayLogger({ format: "xml" as never }), /log\.format/);
  assert.throws(() => createGatewayLogger({ format: "json", level: "loud" }), /log\.level/);
});

test("private field names", () => {
  for (const k of ["destination", "dest", "dest_port", "host", "port", "bytes", "bytes_in", "tx_bytes", "dns_answer", "resolved_addr", "upstream"]) {
    assert.equal(isPrivateField(k), true, k);
  }
  for (const k of ["remote_addr", "user", "listener", "reason", "duration_ms", "limiter", "key_fingerprint", "failures"]) {
    assert.equal(isPrivateField(k), false, k);
  }
});
