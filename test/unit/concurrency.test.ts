import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConcurrencyLimiter, ManualClock, MemoryStore } from "../../src/index.js";

describe("concurrency limiter", () => {
  test("caps holders per key; a release frees a slot; other keys are unaffected", () => {
    const limiter = new ConcurrencyLimiter({ limit: 2, clock: new ManualClock() });
    const a = limiter.tryAcquire("ip1");
    const b = limiter.tryAcquire("ip1");
    assert.deepEqual([a.decision.remaining, b.decision.remaining], [1, 0]);
    const c = limiter.tryAcquire("ip1");
    assert.equal(c.decision.allowed, false);
    assert.equal(c.decision.reason, "concurrency_limit");
    assert.equal(c.lease, undefined);
    assert.equal(limiter.tryAcquire("ip2").decision.allowed, true);
    a.lease!.release();
    assert.equal(limiter.held("ip1"), 1);
    assert.equal(limiter.tryAcquire("ip1").decision.allowed, true);
  });

  test("release is idempotent: releasing one lease twice frees one slot, not two", () => {
    for (const leaseTtlMs of [undefined, 10_000]) {
      const limiter = new ConcurrencyLimiter({ limit: 2, ...(leaseTtlMs ? { leaseTtlMs } : {}), clock: new ManualClock() });
      const a = limiter.tryAcquire("k").lease!;
      limiter.tryAcquire("k");
      a.release();
      a.release();
      a.release();
      assert.equal(limiter.held("k"), 1, `ttl ${leaseTtlMs}`);
    }
  });

  test("a lost lease expires after its TTL, so a crashed holder cannot pin the slot", () => {
    const clock = new ManualClock(0);
    const limiter = new ConcurrencyLimiter({ limit: 1, leaseTtlMs: 5000, clock });
    limiter.tryAcquire("k");
    clock.advance(2000);
    const d = limiter.tryAcquire("k").decision;
    assert.equal(d.allowed, false);
    assert.equal(d.retryAfterMs, 3000, "the wait is until the held lease expires");
    clock.advance(2999);
    assert.equal(limiter.tryAcquire("k").decision.allowed, false);
    clock.advance(1);
    assert.equal(limiter.tryAcquire("k").decision.allowed, true);
  });

  test("renew pushes the expiry back; a released or expired lease cannot be renewed", () => {
    const clock = new ManualClock(0);
    const limiter = new ConcurrencyLimiter({ limit: 1, leaseTtlMs: 1000, clock });
    const lease = limiter.tryAcquire("k").lease!;
    clock.advance(900);
    assert.equal(lease.renew(), true);
    clock.advance(900);
    assert.equal(limiter.held("k"), 1, "renewed at 900, expires at 1900");
    clock.advance(100);
    assert.equal(limiter.held("k"), 0);
    assert.equal(lease.renew(), false);
    const other = limiter.tryAcquire("k").lease!;
    other.release();
    assert.equal(other.renew(), false);
  });

  test("a stale lease released after reset does not free a slot held by a newer holder", () => {
    for (const leaseTtlMs of [undefined, 60_000]) {
      const limiter = new ConcurrencyLimiter({ limit: 1, ...(leaseTtlMs ? { leaseTtlMs } : {}), clock: new ManualClock() });
      const old = limiter.tryAcquire("k").lease!;
      limiter.reset("k");
      assert.equal(limiter.tryAcquire("k").decision.allowed, true);
      old.release();
      assert.equal(limiter.held("k"), 1, `ttl ${leaseTtlMs}: the newer holder still holds its slot`);
      assert.equal(limiter.tryAcquire("k").decision.allowed, false, `ttl ${leaseTtlMs}: the cap still holds`);
    }
  });

  test("a lease of a key evicted from a full store does not free a slot of the key's next life", () => {
    const store = new MemoryStore({ maxKeys: 1 });
    const limiter = new ConcurrencyLimiter({ limit: 1, store, clock: new ManualClock() });
    const old = limiter.tryAcquire("a").lease!;
    limiter.tryAcquire("b"); // evicts "a" (the store holds one key)
    limiter.tryAcquire("a");
    old.release();
    assert.equal(limiter.tryAcquire("a").decision.allowed, false);
  });

  test("shadow mode reports the rejection but lets it through, without a lease", () => {
    const limiter = new ConcurrencyLimiter({ limit: 1, shadow: true, clock: new ManualClock() });
    limiter.tryAcquire("k");
    const r = limiter.tryAcquire("k");
    assert.equal(r.decision.allowed, true);
    assert.equal(r.decision.shadowed, true);
    assert.equal(r.decision.reason, "concurrency_limit");
    assert.equal(limiter.held("k"), 1, "a shadowed rejection takes no slot");
  });
});
