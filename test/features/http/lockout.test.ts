/**
 * Subject lockout through a real node:http login endpoint: failures counted
 * per account whatever IP they come from, success resets, escalation, a lock
 * longer than its window, the programmatic API, and its interplay with the
 * per-IP rate limit.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { after, test } from "node:test";
import { ManualClock } from "../../../src/core/clock.js";
import { parseForm } from "../../../src/features/http/form-body.js";
import { HttpLimiter, type HttpLimiterOptions, withRateLimit } from "../../../src/features/http/index.js";
import { close, listen, recordingLogger, request } from "./helpers.js";

const servers: http.Server[] = [];
after(async () => {
  await Promise.all(servers.map(close));
});

const PASSWORDS: Record<string, string> = { alice: "wonderland", bob: "builder" };

/** A login endpoint: 200 for the right password, 401 otherwise. */
async function loginServer(o: Partial<HttpLimiterOptions> = {}) {
  const clock = new ManualClock(0);
  const logger = recordingLogger();
  const locked: string[] = [];
  const limiter = new HttpLimiter({
    clock,
    logger,
    hooks: { onLockout: (subject) => locked.push(subject) },
    lockout: { maxFailures: 3, windowMs: 60_000, durationMs: 3_600_000, ...o.lockout },
    routes: o.routes ?? [{ name: "login", match: "/login", methods: ["POST"], limit: { algorithm: "fixed_window", permitLimit: 100, windowMs: 60_000 }, lockout: { subject: "user" } }],
  });
  const server = http.createServer(
    withRateLimit(limiter, (req, res) => {
      const form = (req as { body?: Record<string, string> }).body ?? {};
      res.statusCode = form.username !== undefined && PASSWORDS[form.username] === form.password ? 200 : 401;
      res.end();
    }),
  );
  servers.push(server);
  const port = await listen(server);
  const login = (username: string, password: string, from = "127.0.0.1") =>
    request(port, {
      method: "POST",
      path: "/login",
      from,
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ username, password }).toString(),
    });
  return { clock, limiter, logger, login, locked, port };
}

test("failures from different IPs lock the account; the lock holds from a fresh IP and spares other accounts", async () => {
  const s = await loginServer();
  assert.equal((await s.login("alice", "x", "127.0.0.2")).status, 401);
  assert.equal((await s.login("alice", "y", "127.0.0.3")).status, 401);
  assert.equal((await s.login("alice", "z", "127.0.0.4")).status, 401);
  assert.deepEqual(s.locked, ["alice"]);
  const refused = await s.login("alice", "wonderland", "127.0.0.9");
  assert.equal(refused.status, 429, "even the right password from a new IP is refused while locked");
  assert.equal(refused.headers["retry-after"], "3600");
  assert.deepEqual(JSON.parse(refused.body)["violated-policies"], ["lockout"]);
  const warn = s.logger.entries.find((e) => e.msg.includes("locked out") && e.fields.subject === "alice" && e.fields.remote_ip === "127.0.0.9");
  assert.ok(warn, "the refusal is logged with the subject and IP");
  assert.equal((await s.login("bob", "builder", "127.0.0.2")).status, 200, "other accounts, even from the attacking IPs, are not affected");
});

test("subjects are one account whatever their case, unless configured otherwise", async () => {
  const s = await loginServer();
  await s.login("alice", "x");
  await s.login("Alice", "x");
  await s.login("ALICE", "x");
  assert.equal((await s.login("alice", "wonderland")).status, 429);
  const strict = await loginServer({ lockout: { maxFailures: 3, caseSensitive: true } });
  await strict.login("alice", "x");
  await strict.login("Alice", "x");
  await strict.login("ALICE", "x");
  assert.equal((await strict.login("alice", "wonderland")).status, 200);
});

test("a success resets the failure count", async () => {
  const s = await loginServer();
  await s.login("alice", "x");
  await s.login("alice", "x");
  assert.equal((await s.login("alice", "wonderland")).status, 200);
  await s.login("alice", "x");
  await s.login("alice", "x");
  assert.equal((await s.login("alice", "wonderland")).status, 200, "two failures after a success do not lock");
  assert.deepEqual(s.locked, []);
});

test("the lock may be far longer than the failure window, and ends on time", async () => {
  const s = await loginServer();
  for (let i = 0; i < 3; i++) await s.login("alice", "x");
  s.clock.set(59 * 60_000);
  const r = await s.login("alice", "wonderland");
  assert.equal(r.status, 429, "locked 59 minutes later by a one-minute rule");
  assert.equal(r.headers["retry-after"], "60");
  s.clock.set(60 * 60_000);
  assert.equal((await s.login("alice", "wonderland")).status, 200);
});

test("repeated lockouts escalate: each lasts twice the previous", async () => {
  const s = await loginServer({ lockout: { maxFailures: 3, windowMs: 60_000, durationMs: 60_000 } });
  const lockAndMeasure = async () => {
    for (let i = 0; i < 3; i++) assert.equal((await s.login("alice", "x")).status, 401);
    return Number((await s.login("alice", "wonderland")).headers["retry-after"]);
  };
  assert.equal(await lockAndMeasure(), 60);
  s.clock.set(s.clock.now() + 60_000);
  assert.equal(await lockAndMeasure(), 120);
  s.clock.set(s.clock.now() + 120_000);
  assert.equal(await lockAndMeasure(), 240);
  assert.deepEqual(s.locked, ["alice", "alice", "alice"]);
});

test("an IP over its rate limit is refused whatever account it tries", async () => {
  const s = await loginServer({
    routes: [{ name: "login", match: "/login", limit: { name: "login-ip", algorithm: "fixed_window", permitLimit: 2, windowMs: 60_000, key: "ip" }, lockout: { subject: "user" } }],
  });
  assert.equal((await s.login("alice", "x", "127.0.0.7")).status, 401);
  assert.equal((await s.login("bob", "x", "127.0.0.7")).status, 401);
  const r = await s.login("carol", "x", "127.0.0.7");
  assert.equal(r.status, 429);
  assert.deepEqual(JSON.parse(r.body)["violated-policies"], ["login-ip"]);
  assert.equal((await s.login("bob", "builder", "127.0.0.8")).status, 200, "another IP is not limited");
});

test("the application can report outcomes itself with recordFailure / recordSuccess", async () => {
  const s = await loginServer({
    routes: [{ name: "login", match: "/login", lockout: { subject: "user", failureStatuses: [418] } }],
  });
  // The app reports failures through the API (its status codes are not failures here).
  s.limiter.recordFailure("alice");
  s.limiter.recordFailure("alice");
  s.limiter.recordSuccess("alice");
  s.limiter.recordFailure("alice");
  s.limiter.recordFailure("alice");
  assert.equal((await s.login("alice", "wonderland")).status, 200, "the success in between reset the count");
  // That 200 was a success too: the count starts again from zero.
  s.limiter.recordFailure("alice");
  s.limiter.recordFailure("alice");
  assert.equal((await s.login("alice", "wonderland")).status, 200);
  for (let i = 0; i < 3; i++) s.limiter.recordFailure("alice");
  assert.equal((await s.login("alice", "wonderland")).status, 429, "three reported failures lock");
  s.limiter.recordSuccess("alice");
  assert.equal((await s.login("alice", "wonderland")).status, 429, "a success reported during a lock does not lift it");
  assert.equal(s.limiter.lockout.unlock("alice"), true);
  assert.equal((await s.login("alice", "wonderland")).status, 200);
});

test("lockout in shadow mode logs but does not refuse", async () => {
  const s = await loginServer({ lockout: { maxFailures: 2, shadow: true } });
  await s.login("alice", "x");
  await s.login("alice", "x");
  assert.equal((await s.login("alice", "wonderland")).status, 200);
  assert.ok(s.logger.entries.some((e) => e.msg.includes("would be locked out") && e.fields.subject === "alice"));
});

test("form parsing keeps the body for the application", () => {
  assert.deepEqual({ ...parseForm(Buffer.from("username=al%C3%AFce&password=a+b&username=x")) }, { username: "alïce", password: "a b" });
});
