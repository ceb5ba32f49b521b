/**
 * Profiles: each preset's numbers as the limiter applies them (quota,
 * window, queue, lockout threshold), and overrides of single fields at the
 * profile and at the route.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ManualClock } from "../../../src/core/clock.js";
import { HttpLimiter, PROFILES, type ProfileName, type Verdict, resolveProfile } from "../../../src/features/http/index.js";
import { parseRateLimit } from "./helpers.js";

const req = (path = "/api", ip = "192.0.2.1", body?: unknown) => ({ method: "POST", url: path, headers: {}, remoteAddress: ip, body });

function sync(v: Verdict | Promise<Verdict>): Verdict {
  assert.ok(!(v instanceof Promise), "expected an immediate verdict");
  return v;
}

const expected: Record<ProfileName, { q: number; w: number; queue: number; failures: number }> = {
  default: { q: 30, w: 60, queue: 0, failures: 5 },
  high_trust: { q: 60, w: 60, queue: 5, failures: 5 },
  air_gapped: { q: 10, w: 120, queue: 0, failures: 5 },
  lockdown: { q: 5, w: 300, queue: 0, failures: 3 },
};

describe("profiles", () => {
  for (const [name, e] of Object.entries(expected) as [ProfileName, (typeof expected)[ProfileName]][]) {
    test(`${name}: ${e.q} per ${e.w} s, queue ${e.queue}, lockout after ${e.failures} failures`, async () => {
      const clock = new ManualClock(0);
      const limiter = new HttpLimiter({ clock, profile: name, routes: [{ name: "api", match: "/api", lockout: { subject: "user" } }] });
      const first = sync(limiter.decide(req()));
      assert.deepEqual(parseRateLimit(first.headers["ratelimit-policy"]), [{ name: "api", params: { q: e.q, w: e.w } }]);
      for (let i = 1; i < e.q; i++) assert.equal(sync(limiter.decide(req())).allowed, true);
      // Past the quota: queued when the profile has a queue, rejected otherwise.
      const over: Promise<Verdict>[] = [];
      for (let i = 0; i < e.queue; i++) {
        const v = limiter.decide(req());
        assert.ok(v instanceof Promise, `request ${i + 1} over the quota queues`);
        over.push(v);
      }
      const rejected = await limiter.decide(req());
      assert.equal(rejected.status, 429);
      assert.equal(Number(rejected.headers["retry-after"]), e.w, "the next window has room for the queue and this request");
      clock.set(e.w * 1000);
      for (const v of over) assert.equal((await v).allowed, true);
      // The lockout threshold.
      for (let i = 0; i < e.failures - 1; i++) limiter.recordFailure("mallory");
      assert.equal(sync(limiter.decide(req("/api", "192.0.2.99", { username: "mallory" }))).allowed, true);
      limiter.recordFailure("mallory");
      assert.equal(sync(limiter.decide(req("/api", "192.0.2.99", { username: "mallory" }))).status, 429);
      limiter.dispose();
    });
  }

  test("one field of a profile can be overridden, the rest stay", () => {
    assert.deepEqual(resolveProfile("lockdown", { permitLimit: 8 }), { ...PROFILES.lockdown, permitLimit: 8 });
    const limiter = new HttpLimiter({ clock: new ManualClock(0), profile: { name: "lockdown", permitLimit: 8 }, routes: [{ name: "api", match: "/api" }] });
    const v = sync(limiter.decide(req()));
    assert.deepEqual(parseRateLimit(v.headers["ratelimit-policy"]), [{ name: "api", params: { q: 8, w: 300 } }]);
    assert.equal(limiter.lockout.maxFailures, 3);
  });

  test("a route can override single fields of the profile's window", () => {
    const limiter = new HttpLimiter({
      clock: new ManualClock(0),
      profile: "high_trust",
      routes: [{ name: "api", match: "/api", limit: { permitLimit: 2, queueLimit: 0 } }],
    });
    assert.deepEqual(parseRateLimit(sync(limiter.decide(req())).headers["ratelimit-policy"]), [{ name: "api", params: { q: 2, w: 60 } }]);
    sync(limiter.decide(req()));
    assert.equal(sync(limiter.decide(req())).status, 429, "no queue: rejected at once");
  });

  test("presets cannot be changed by callers, and unknown names or fields are refused", () => {
    assert.throws(() => {
      (PROFILES.default as { permitLimit: number }).permitLimit = 1000;
    });
    assert.equal(PROFILES.default.permitLimit, 30);
    assert.throws(() => resolveProfile("paranoid" as ProfileName), /profile/);
    assert.throws(() => resolveProfile("default", { permitLimt: 3 } as never), /profile\.permitLimt/);
  });
});
