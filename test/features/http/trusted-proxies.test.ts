/**
 * Client addresses under the trusted-proxy rules, through a real server
 * whose peers are distinct loopback addresses: forwarding headers from an
 * untrusted peer are ignored (with one warning), from a trusted one they are
 * read right to left; IPv4-mapped and IPv6 /64 keys follow the engine.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { after, describe, test } from "node:test";
import { ManualClock } from "../../../src/core/clock.js";
import { HttpLimiter, TrustedProxies, resolveClientIp, withRateLimit } from "../../../src/features/http/index.js";
import { close, listen, recordingLogger, request } from "./helpers.js";

const servers: http.Server[] = [];
after(async () => {
  await Promise.all(servers.map(close));
});

async function serve(trustedProxies: string[]) {
  const logger = recordingLogger();
  const limiter = new HttpLimiter({
    clock: new ManualClock(0),
    logger,
    trustedProxies,
    routes: [{ name: "token", match: "/token", limit: { algorithm: "fixed_window", permitLimit: 1, windowMs: 60_000 } }],
  });
  const server = http.createServer(withRateLimit(limiter, (_req, res) => res.end("ok")));
  servers.push(server);
  const port = await listen(server);
  const get = (from: string, headers: Record<string, string> = {}) => request(port, { path: "/token", from, headers });
  return { logger, get };
}

describe("trusted proxies through node:http", () => {
  test("a spoofed X-Forwarded-For from an untrusted peer is ignored, and warned about once", async () => {
    const s = await serve(["127.0.0.3/32"]);
    assert.equal((await s.get("127.0.0.2", { "x-forwarded-for": "198.51.100.1" })).status, 200);
    for (let i = 2; i < 6; i++) {
      const r = await s.get("127.0.0.2", { "x-forwarded-for": `198.51.100.${i}` });
      assert.equal(r.status, 429, "a new forwarded address does not buy a new budget");
    }
    assert.equal((await s.get("127.0.0.2", { Forwarded: "for=198.51.100.77" })).status, 429);
    const warnings = s.logger.entries.filter((e) => e.msg.includes("untrusted peer"));
    assert.equal(warnings.length, 1, "one warning, not one per request");
    const throttled = s.logger.entries.filter((e) => e.msg === "request throttled");
    assert.ok(throttled.every((e) => e.fields.remote_ip === "127.0.0.2"));
  });

  test("behind a trusted proxy the forwarded client is the key", async () => {
    const s = await serve(["127.0.0.3/32", "10.0.0.0/8"]);
    assert.equal((await s.get("127.0.0.3", { "x-forwarded-for": "198.51.100.1" })).status, 200);
    assert.equal((await s.get("127.0.0.3", { "X-Forwarded-For": "198.51.100.2" })).status, 200, "another client behind the same proxy (any header case)");
    assert.equal((await s.get("127.0.0.3", { "x-forwarded-for": "198.51.100.1" })).status, 429);
    // The client prepends a fake address; the rightmost untrusted hop is still the real one.
    const r = await s.get("127.0.0.3", { "x-forwarded-for": "203.0.113.9, 198.51.100.2, 10.1.2.3" });
    assert.equal(r.status, 429, "198.51.100.2 behind two proxies, whatever it claims to the left");
    const last = s.logger.entries.filter((e) => e.msg === "request throttled").pop()!;
    assert.equal(last.fields.remote_ip, "198.51.100.2");
    assert.equal(s.logger.entries.filter((e) => e.msg.includes("untrusted peer")).length, 0);
  });

  test("Forwarded (RFC 7239), IPv4-mapped addresses and IPv6 /64 keys", async () => {
    const s = await serve(["127.0.0.3"]);
    assert.equal((await s.get("127.0.0.3", { forwarded: 'for="[2001:db8:cafe::17]:4711";proto=https' })).status, 200);
    assert.equal((await s.get("127.0.0.3", { forwarded: 'for="[2001:db8:cafe::18]"' })).status, 429, "same /64");
    assert.equal((await s.get("127.0.0.3", { forwarded: 'for="[2001:db8:cafd::18]"' })).status, 200, "another /64");
    assert.equal((await s.get("127.0.0.3", { "x-forwarded-for": "198.51.100.40" })).status, 200);
    assert.equal((await s.get("127.0.0.3", { "x-forwarded-for": "::ffff:198.51.100.40" })).status, 429, "IPv4-mapped is the same client");
  });
});

describe("resolveClientIp", () => {
  const trusted = new TrustedProxies(["10.0.0.0/8", "::1"]);
  test("garbage in a chain stops at the last trusted hop instead of guessing", () => {
    assert.deepEqual(resolveClientIp("10.0.0.1", { "x-forwarded-for": "198.51.100.1, unknown" }, trusted), { ip: "10.0.0.1", ignoredForwarding: false });
    assert.equal(resolveClientIp("10.0.0.1", { "x-forwarded-for": "198.51.100.1, 10.0.0.2" }, trusted).ip, "198.51.100.1");
    assert.equal(resolveClientIp("10.0.0.1", { forwarded: "for=_hidden" }, trusted).ip, "10.0.0.1");
    assert.equal(resolveClientIp("10.0.0.1", { forwarded: 'for="198.51.100.3:8080", for=10.0.0.9' }, trusted).ip, "198.51.100.3");
    assert.equal(resolveClientIp("::ffff:10.0.0.1", { "x-forwarded-for": "198.51.100.4" }, trusted).ip, "198.51.100.4", "an IPv4-mapped peer is matched as IPv4");
  });
  test("an untrusted or missing peer", () => {
    assert.deepEqual(resolveClientIp("192.0.2.1", { "x-forwarded-for": "198.51.100.1" }, trusted), { ip: "192.0.2.1", ignoredForwarding: true });
    assert.deepEqual(resolveClientIp("192.0.2.1", {}, trusted), { ip: "192.0.2.1", ignoredForwarding: false });
    assert.equal(resolveClientIp(undefined, {}, trusted).ip, "unknown");
  });
  test("a chain is read for at most 32 hops: past that the walk stops at the last hop read", () => {
    const hops = ["198.51.100.1", ...Array.from({ length: 40 }, (_, i) => `10.0.0.${i + 1}`)];
    assert.equal(resolveClientIp("10.0.0.100", { "x-forwarded-for": hops.join(", ") }, trusted).ip, "10.0.0.9");
    assert.equal(resolveClientIp("10.0.0.100", { "x-forwarded-for": hops.slice(0, 20).join(", ") }, trusted).ip, "198.51.100.1");
  });
  test("HttpLimiter.clientIp applies the same rules", () => {
    const l = new HttpLimiter({ routes: [], trustedProxies: ["10.0.0.0/8"] });
    assert.equal(l.clientIp({ remoteAddress: "10.1.1.1", headers: { "x-forwarded-for": "198.51.100.9" } }), "198.51.100.9");
  });
});
