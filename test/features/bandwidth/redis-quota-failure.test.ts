/**
 * What a byte cap shared through Redis gets while Redis is gone, per
 * failure mode: a RedisQuotaSource on a store whose redis-server was
 * killed. `closed` grants nothing, `open` grants every slice, `insurance`
 * grants this instance's share of the bucket (its burst divided by the
 * expected instances) and then nothing until it refills.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { RedisQuotaSource } from "../../../src/features/bandwidth/redis-quota.js";
import type { FailureMode } from "../../../src/stores/store.js";
import { RedisStore } from "../../../src/stores/redis/redis-store.js";
import { ThrowawayRedis, uniquePrefix } from "../../redis/helpers.js";

const SPEC = { bytesPerSecond: 100_000, burst: 20_000 };
const closing: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closing) await c();
});

/** A source on a store whose Redis answered once and was then killed. */
async function orphaned(onFailure: FailureMode): Promise<RedisQuotaSource> {
  const redis = await ThrowawayRedis.create();
  const store = new RedisStore({ url: redis.url, prefix: uniquePrefix("quota-down"), onFailure, expectedInstances: 2, timeoutMs: 200 });
  closing.push(async () => {
    await store.close();
    await redis.kill();
  });
  assert.ok(await store.ready(), "Redis answers before it is killed");
  await redis.kill();
  return new RedisQuotaSource({ store, sliceMs: 100 });
}

/** Bytes granted by asking for 5,000 at a time until a grant of 0 (at most 40 asks). */
async function drain(source: RedisQuotaSource): Promise<{ total: number; asks: number }> {
  let total = 0;
  for (let asks = 1; asks <= 40; asks++) {
    const g = await source.take("id:alice:up", 5000, SPEC);
    if (g === 0) return { total, asks };
    total += g;
  }
  return { total, asks: 40 };
}

describe("a shared byte cap while Redis is unavailable", () => {
  test("closed: nothing is granted", { timeout: 20_000 }, async () => {
    const r = await drain(await orphaned("closed"));
    assert.equal(r.total, 0);
  });

  test("open: every slice is granted", { timeout: 20_000 }, async () => {
    const r = await drain(await orphaned("open"));
    assert.equal(r.asks, 40, "never refused");
    assert.ok(r.total > SPEC.burst, `more than the whole burst: ${r.total}`);
  });

  test("insurance: this instance's share of the burst (burst / expected instances), then nothing", { timeout: 20_000 }, async () => {
    const r = await drain(await orphaned("insurance"));
    assert.ok(r.total >= SPEC.burst / 2, `the local share is granted: ${r.total}`);
    assert.ok(r.total < SPEC.burst, `less than the whole burst: ${r.total}`);
  });
});
