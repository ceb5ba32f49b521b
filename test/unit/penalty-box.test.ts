import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidArgumentError, ManualClock, PenaltyBox, type PenaltyBoxOptions, backoffMs, banLengthMs, penaltyParams } from "../../src/index.js";

function box(o: PenaltyBoxOptions = {}) {
  const clock = new ManualClock(1_000_000);
  return { clock, box: new PenaltyBox({ clock, ...o }) };
}

describe("penalty box", () => {
  test("default back-off: streak 4 -> 25 ms, 5 -> 50 ms, 9 -> 800 ms, >= 10 -> 1 s, no overflow at huge streaks", () => {
    const p = penaltyParams();
    assert.deepEqual([1, 2, 3].map((s) => backoffMs(s, p)), [0, 0, 0]);
    assert.equal(backoffMs(4, p), 25);
    assert.equal(backoffMs(5, p), 50);
    assert.equal(backoffMs(9, p), 800);
    assert.equal(backoffMs(10, p), 1000);
    for (const s of [11, 64, 1100, 2 ** 40, Number.MAX_SAFE_INTEGER]) assert.equal(backoffMs(s, p), 1000, `streak ${s}`);
  });

  test("ban lengths: 10 min, doubling, capped at 1 day, no overflow", () => {
    const p = penaltyParams();
    assert.deepEqual([0, 1, 2, 3].map((b) => banLengthMs(b, p)), [600_000, 1_200_000, 2_400_000, 4_800_000]);
    assert.equal(banLengthMs(8, p), 86_400_000);
    assert.equal(banLengthMs(5000, p), 86_400_000);
  });

  test("the streak rises by exactly 1 per failure for one key and never touches other keys", () => {
    const { box: b } = box({ banFailures: 1000 });
    b.recordFailure("other");
    for (let i = 1; i <= 20; i++) {
      assert.equal(b.recordFailure("k").streak, i);
      assert.equal(b.status("other").streak, 1);
      assert.equal(b.status("third").streak, 0);
    }
  });

  test("throttling starts exactly at the Nth failure, not before", () => {
    const { box: b } = box({ throttleAfter: 4 });
    for (let i = 1; i <= 3; i++) {
      b.recordFailure("k");
      assert.equal(b.check("k").allowed, true, `after failure ${i}`);
    }
    b.recordFailure("k");
    const d = b.check("k");
    assert.equal(d.allowed, false);
    assert.equal(d.reason, "throttled");
    assert.equal(d.retryAfterMs, 25);
  });

  test("the back-off window lasts at least the computed back-off and expires right after it", () => {
    const { clock, box: b } = box();
    for (let i = 0; i < 9; i++) b.recordFailure("k");
    assert.equal(b.check("k").retryAfterMs, 800);
    clock.advance(799);
    assert.equal(b.check("k").allowed, false);
    assert.equal(b.check("k").retryAfterMs, 1);
    clock.advance(1);
    assert.equal(b.check("k").allowed, true);
  });

  test("100 probes from one key keep the streak monotonic (throttled or not, each failure counts once)", () => {
    const { clock, box: b } = box({ banFailures: 1_000_000 });
    let last = 0;
    for (let i = 0; i < 100; i++) {
      const r = b.recordFailure("k");
      assert.equal(r.streak, last + 1);
      last = r.streak;
      clock.advance(i % 7);
    }
    assert.equal(b.status("k").throttledUntil, b.now() - (99 % 7) + 1000);
  });

  test("M failures inside the window ban the key; the next ban lasts twice as long", () => {
    const { clock, box: b } = box({ banFailures: 10, banWindowMs: 60_000 });
    for (let i = 1; i <= 9; i++) {
      assert.equal(b.recordFailure("k").banned, false);
      clock.advance(5000);
    }
    const r = b.recordFailure("k");
    assert.equal(r.banned, true);
    assert.equal(r.bannedUntil, b.now() + 600_000);
    const d = b.check("k");
    assert.equal(d.reason, "banned");
    assert.equal(d.retryAfterMs, 600_000);
    clock.advance(600_000);
    assert.equal(b.check("k").allowed, true);
    for (let i = 0; i < 9; i++) b.recordFailure("k");
    const again = b.recordFailure("k");
    assert.equal(again.banned, true);
    assert.equal(again.bannedUntil - b.now(), 1_200_000);
    assert.equal(again.bans, 2);
  });

  test("failures spread wider than the window do not ban", () => {
    const { clock, box: b } = box({ banFailures: 3, banWindowMs: 1000, retentionMs: 1_000_000 });
    for (let i = 0; i < 10; i++) {
      assert.equal(b.recordFailure("k").banned, false);
      clock.advance(600);
    }
  });

  test("success clears the key", () => {
    const { box: b } = box();
    for (let i = 0; i < 10; i++) b.recordFailure("k");
    assert.equal(b.check("k").reason, "banned");
    b.recordSuccess("k");
    assert.equal(b.check("k").allowed, true);
    assert.equal(b.status("k").streak, 0);
    assert.equal(b.size, 0);
  });

  test("an entry quiet for the retention period reads as clean", () => {
    const { clock, box: b } = box({ retentionMs: 600_000 });
    for (let i = 0; i < 6; i++) b.recordFailure("k");
    clock.advance(599_999);
    assert.equal(b.status("k").streak, 6);
    clock.advance(1);
    assert.equal(b.status("k").streak, 0);
    assert.equal(b.recordFailure("k").streak, 1, "a stale entry starts over");
  });

  test("a ban outlives retention: the key stays banned for the whole ban", () => {
    const { clock, box: b } = box({ retentionMs: 1000, banFailures: 2, banDurationMs: 50_000 });
    b.recordFailure("k");
    b.recordFailure("k");
    clock.advance(49_999);
    assert.equal(b.check("k").reason, "banned");
    clock.advance(1);
    assert.equal(b.check("k").allowed, true);
  });

  describe("saturation", () => {
    test("a full table still tracks a newcomer, evicting the lowest streak (ties: the oldest), and reports saturation", () => {
      const { clock, box: b } = box({ maxKeys: 3, banFailures: 100 });
      for (let i = 0; i < 5; i++) b.recordFailure("attacker");
      clock.advance(1);
      b.recordFailure("low-old");
      clock.advance(1);
      b.recordFailure("low-new");
      assert.equal(b.saturated, true);
      const r = b.recordFailure("newcomer");
      assert.equal(r.saturated, true);
      assert.equal(r.streak, 1);
      assert.equal(b.size, 3);
      assert.equal(b.status("attacker").streak, 5, "the high-streak attacker is never the one forgotten");
      assert.equal(b.status("low-old").streak, 0, "the oldest of the lowest streaks went");
      assert.equal(b.status("low-new").streak, 1);
      assert.equal(b.evictions, 1);
    });

    test("stale entries go first, and then the table is not saturated", () => {
      const { clock, box: b } = box({ maxKeys: 2, retentionMs: 1000 });
      b.recordFailure("old");
      clock.advance(500);
      for (let i = 0; i < 3; i++) b.recordFailure("live");
      clock.advance(600);
      assert.equal(b.saturated, false, "the oldest entry is stale");
      const r = b.recordFailure("newcomer");
      assert.equal(r.saturated, false);
      assert.equal(b.status("live").streak, 3);
      assert.equal(b.evictions, 0);
    });

    test("a stale entry is evicted before a live one even when a long ban sits at the oldest end", () => {
      const { clock, box: b } = box({ maxKeys: 3, retentionMs: 600_000, banFailures: 10, banDurationMs: 600_000 });
      for (let i = 0; i < 10; i++) b.recordFailure("banned");
      clock.advance(1000);
      for (let i = 0; i < 5; i++) b.recordFailure("stale");
      clock.advance(649_000);
      b.recordFailure("live");
      clock.advance(50_000);
      // "stale" is quiet for 699 s (> retention); "banned" is live until its ban ends plus retention.
      assert.equal(b.status("stale").streak, 0);
      assert.equal(b.saturated, false, "a stale entry exists, so the table is not saturated");
      const r = b.recordFailure("newcomer");
      assert.equal(r.saturated, false);
      assert.equal(b.status("live").streak, 1, "the live low-streak entry is kept");
      assert.equal(b.status("banned").streak, 10, "the once-banned key is still within its retention");
      assert.equal(b.evictions, 0);
    });

    test("a flood of newcomers cannot flush a ban: banned keys are evicted last, even with a streak of 0", () => {
      const { clock, box: b } = box({ maxKeys: 3 });
      b.ban("admin-banned", 3_600_000);
      clock.advance(1);
      b.recordFailure("a");
      b.recordFailure("a");
      for (let i = 0; i < 50; i++) {
        clock.advance(1);
        b.recordFailure(`flood-${i}`);
      }
      assert.equal(b.check("admin-banned").reason, "banned");
      assert.equal(b.status("a").streak, 2, "the higher streak outlives streak-1 newcomers");
      assert.equal(b.size, 3);
    });

    test("size never exceeds maxKeys under a flood of distinct keys", () => {
      const { clock, box: b } = box({ maxKeys: 100 });
      for (let i = 0; i < 10_000; i++) {
        b.recordFailure(`ip-${i}`);
        if (i % 100 === 0) clock.advance(1);
        assert.ok(b.size <= 100);
      }
      assert.equal(b.size, 100);
    });
  });

  test("shadow mode reports but never blocks", () => {
    const { box: b } = box({ shadow: true });
    for (let i = 0; i < 10; i++) b.recordFailure("k");
    const d = b.check("k");
    assert.equal(d.allowed, true);
    assert.equal(d.shadowed, true);
    assert.equal(d.reason, "banned");
  });
});

describe("penalty box input", () => {
  test("a non-string key is refused on every operation instead of reading as clean", () => {
    const { box: b } = box();
    for (const op of [() => b.check(1 as unknown as string), () => b.status(null as unknown as string), () => b.ban({} as string), () => b.recordFailure(2 as unknown as string)]) {
      assert.throws(op, (e: unknown) => e instanceof InvalidArgumentError && e.param === "key");
    }
  });

  test("a ban of NaN or negative length is refused and leaves the key untouched", () => {
    const { box: b } = box();
    for (const bad of [NaN, -1, -Infinity]) {
      assert.throws(() => b.ban("k", bad), (e: unknown) => e instanceof InvalidArgumentError && e.param === "durationMs");
    }
    assert.equal(b.check("k").allowed, true);
    const until = b.ban("k", 5000);
    assert.equal(until, b.now() + 5000);
    assert.equal(b.check("k").retryAfterMs, 5000);
  });

  test("an admin ban escalates like an earned one and lists in banned()", () => {
    const { clock, box: b } = box();
    assert.equal(b.ban("k") - b.now(), 600_000);
    clock.advance(600_000);
    assert.equal(b.ban("k") - b.now(), 1_200_000);
    assert.deepEqual([...b.banned()].map((x) => [x.key, x.bans]), [["k", 2]]);
    assert.equal(b.forget("k"), true);
    assert.deepEqual([...b.banned()], []);
  });
});
