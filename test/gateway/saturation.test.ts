/**
 * The guard under IP churn: when the failed-login table is full of live
 * records it enters defensive mode (failures of untracked addresses count
 * against their prefix), so no offender is forgotten, and the mode ends by
 * itself. Driven through the guard's API the connect listener uses (admit,
 * authCheck, recordAuthFailure) on a manual clock; the same capability
 * through a real `portcullis run` is in saturation-cli.test.ts.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/core/clock.js";
import { validateConfig } from "../../src/gateway/config/load.js";
import { ConnectionGuard, type GuardHit } from "../../src/gateway/guard/connection-guard.js";
import type { DefensiveTransition } from "../../src/gateway/guard/defensive-mode.js";
import { SWEEP_INTERVAL_MS } from "../../src/gateway/guard/table-sweeper.js";
import { MemoryStore } from "../../src/stores/memory-store.js";
import { configOf } from "./fixtures.js";

function guardOf(guardDoc: Record<string, unknown>, clock = new ManualClock()) {
  const cfg = configOf({ guard: guardDoc, listener: [{ name: "l", kind: "connect", bind: "127.0.0.1:0" }] }).guard;
  const transitions: DefensiveTransition[] = [];
  const prefixBans: string[] = [];
  const guard = new ConnectionGuard(cfg, {
    clock,
    store: new MemoryStore({ maxKeys: 1_000_000 }),
    onDefensiveMode: (t) => transitions.push(t),
    onPrefixBan: (p) => prefixBans.push(p),
  });
  return { guard, clock, transitions, prefixBans };
}

/** The n-th address of 127.64.0.0/10 (n from 0), as a client of the flood. */
function churnAddress(n: number): string {
  const v = (127 << 24) + (64 << 16) + 1 + n;
  return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

const refusedAtAccept = (a: ReturnType<ConnectionGuard<true>["admit"]>): a is GuardHit => "limiter" in a;

/**
 * One connection that tries `attempts` wrong passwords, as the connect
 * listener handles it: admission, then per attempt the gate before
 * verification and the failure record. Returns how it ended.
 */
function failLogins(guard: ConnectionGuard<true>, address: string, attempts: number): "refused_at_accept" | "refused_before_verification" | "failed" {
  const a = guard.admit(address);
  if (refusedAtAccept(a)) return "refused_at_accept";
  try {
    for (let i = 0; i < attempts; i++) {
      if (!guard.authCheck(a.key).allowed) return "refused_before_verification";
      guard.recordAuthFailure(a.key);
    }
    return "failed";
  } finally {
    a.release();
  }
}

/** Whether a new connection from `address` is refused, at accept or before its password is checked. */
function refused(guard: ConnectionGuard<true>, address: string): boolean {
  const a = guard.admit(address);
  if (refusedAtAccept(a)) return true;
  a.release();
  return !guard.authCheck(a.key).allowed;
}

describe("IP churn past the failed-login table", () => {
  test("70,000 addresses failing 3 logins each with ban.failures = 3: every one is refused afterwards, and the table never drops a record", () => {
    const { guard, transitions } = guardOf({ ban: { failures: 3 }, max_auth_attempts: 3 });
    const N = 70_000;
    assert.ok(N > guard.penaltyBox.maxKeys, "the flood must exceed the table's default size");
    for (let i = 0; i < N; i++) failLogins(guard, churnAddress(i), 3);
    let notRefused = 0;
    let first: string | undefined;
    for (let i = 0; i < N; i++) {
      if (!refused(guard, churnAddress(i))) {
        notRefused++;
        first ??= churnAddress(i);
      }
    }
    assert.equal(notRefused, 0, `${notRefused} offenders not refused, the first ${first}`);
    const st = guard.saturation();
    assert.equal(st.tracked, 65_536);
    assert.equal(st.maxTracked, 65_536);
    assert.equal(st.liveEvictions, 0, "defensive mode starts before a live record would be dropped");
    assert.equal(st.active, true);
    assert.equal(st.starts, 1);
    assert.ok(st.prefixes > 0 && st.prefixes < 100, `prefixes tracked: ${st.prefixes}`);
    assert.deepEqual(
      transitions.map((t) => [t.active, t.reason]),
      [[true, "table_full"]],
    );
    // An address that never failed, in an attacked /24, is refused too (the prefix is banned) ...
    assert.equal(refused(guard, churnAddress(N + 1)), true);
    // ... and one elsewhere is not.
    assert.equal(refused(guard, "127.1.2.3"), false);
  });

  test("round-robin failures (every address once, then again): still every address refused", () => {
    const { guard } = guardOf({ ban: { failures: 3 }, max_tracked: 1000 });
    const N = 1500;
    for (let round = 0; round < 3; round++) for (let i = 0; i < N; i++) failLogins(guard, churnAddress(i), 1);
    for (let i = 0; i < N; i++) assert.equal(refused(guard, churnAddress(i)), true, churnAddress(i));
    assert.equal(guard.saturation().liveEvictions, 0);
  });

  test("without saturation nothing changes: failures count per address and no prefix is tracked", () => {
    const { guard, transitions } = guardOf({ ban: { failures: 3 }, max_tracked: 100 });
    for (let i = 0; i < 100; i++) failLogins(guard, churnAddress(i), 3);
    assert.equal(guard.saturation().prefixes, 0);
    assert.equal(guard.saturation().active, false);
    assert.equal(transitions.length, 0);
    // A neighbour of banned addresses is served.
    assert.equal(refused(guard, churnAddress(200)), false);
  });

  test("a record dropped anyway (a manual ban into a full table) is counted as a live eviction and starts the mode", () => {
    const { guard, transitions } = guardOf({ ban: { failures: 3 }, max_tracked: 4 });
    for (let i = 0; i < 4; i++) failLogins(guard, churnAddress(i), 1);
    guard.penaltyBox.ban("10.0.0.1", 60_000);
    const st = guard.saturation();
    assert.equal(st.liveEvictions, 1);
    assert.equal(st.active, true);
    assert.deepEqual(
      transitions.map((t) => t.reason),
      ["live_eviction"],
    );
  });

  test("IPv6: /64 keys are tracked by /48 in defensive mode", () => {
    const { guard, prefixBans } = guardOf({ ban: { failures: 3 }, max_tracked: 2 });
    failLogins(guard, "2001:db8:1:1::1", 1);
    failLogins(guard, "2001:db8:1:2::1", 1);
    // Table full: three /64s of one /48 fail once each.
    for (const a of ["2001:db8:7:1::1", "2001:db8:7:2::1", "2001:db8:7:3::1"]) failLogins(guard, a, 1);
    assert.deepEqual(prefixBans, ["2001:db8:7::/48"]);
    assert.equal(refused(guard, "2001:db8:7:ffff::9"), true);
    assert.equal(refused(guard, "2001:db8:8::1"), false);
  });

  test("prefix sizes follow guard.saturation", () => {
    const { guard, prefixBans } = guardOf({ ban: { failures: 2 }, max_tracked: 1, saturation: { ipv4_prefix: 16 } });
    failLogins(guard, "10.0.0.1", 1);
    failLogins(guard, "10.9.1.1", 1);
    failLogins(guard, "10.9.200.1", 1);
    assert.deepEqual(prefixBans, ["10.9.0.0/16"]);
    assert.equal(refused(guard, "10.9.77.77"), true);
  });
});

describe("defensive mode ends by itself", () => {
  test("it lasts saturation.duration after the last time the table was full, then ends; starts are logged at most once a minute", () => {
    const { guard, clock, transitions } = guardOf({ ban: { failures: 100 }, max_tracked: 2, saturation: { duration: "30s" } });
    failLogins(guard, "10.0.0.1", 1);
    failLogins(guard, "10.0.0.2", 1);
    failLogins(guard, "10.0.1.1", 1);
    assert.equal(guard.saturation().active, true);
    clock.advance(20_000);
    // Still full: a newcomer extends the mode.
    failLogins(guard, "10.0.2.1", 1);
    clock.advance(29_000);
    assert.equal(guard.saturation().active, true, "extended to 30 s after the last saturation");
    clock.advance(1_000);
    assert.equal(guard.saturation().active, false);
    assert.deepEqual(
      transitions.map((t) => [t.active, t.log]),
      [
        [true, true],
        [false, true],
      ],
    );
    // A second start 50 s after the first logged one is not logged (nor its end); the next one after a minute is, with the count.
    failLogins(guard, "10.0.3.1", 1);
    clock.advance(30_000);
    failLogins(guard, "10.0.4.1", 1);
    assert.deepEqual(
      transitions.slice(2).map((t) => [t.active, t.log, t.suppressed]),
      [
        [true, false, 0],
        [false, false, 0],
        [true, true, 1],
      ],
    );
    assert.equal(guard.saturation().starts, 3);
  });

  test("after the mode, untracked addresses are tracked by address again, and prefix bans still hold until they end", () => {
    const { guard, clock } = guardOf({ ban: { failures: 2, duration: "10m" }, max_tracked: 2, saturation: { duration: "1m" } });
    failLogins(guard, "10.0.0.1", 1);
    failLogins(guard, "10.0.0.2", 1);
    failLogins(guard, "10.7.0.1", 2);
    assert.equal(refused(guard, "10.7.0.99"), true);
    clock.advance(60_000);
    assert.equal(guard.saturation().active, false);
    assert.equal(refused(guard, "10.7.0.99"), true, "the prefix ban outlives the mode");
    clock.advance(10 * 60_000);
    assert.equal(refused(guard, "10.7.0.99"), false, "and ends with its duration");
  });
});

describe("the tables give their memory back", () => {
  test("stale records are swept after the flood without new failures; live ones stay; no timer is left when the tables are empty", () => {
    const { guard, clock } = guardOf({ ban: { failures: 3, window: "10s", duration: "20s", max_duration: "20s" }, max_tracked: 500, saturation: { duration: "15s" } });
    // 600 addresses: 500 tracked and banned, the rest by prefix in defensive mode.
    for (let i = 0; i < 600; i++) failLogins(guard, churnAddress(i), 3);
    assert.equal(guard.saturation().tracked, 500);
    assert.ok(guard.saturation().prefixes > 0);
    clock.advance(SWEEP_INTERVAL_MS);
    assert.equal(guard.saturation().tracked, 500, "banned records are live: nothing swept");
    assert.equal(refused(guard, churnAddress(0)), true);
    // Records expire 30 s after their last failure (the ban plus the counting window); a sweep follows within its interval.
    clock.advance(30_000 + SWEEP_INTERVAL_MS);
    assert.equal(guard.saturation().tracked, 0);
    assert.equal(guard.saturation().prefixes, 0);
    assert.equal(guard.saturation().active, false);
    assert.equal(clock.pendingTimers(), 0);
  });
});

describe("config", () => {
  test("guard.max_tracked and guard.saturation are validated, naming the key path", () => {
    const base = { listener: [{ name: "l", kind: "connect", bind: "127.0.0.1:0" }] };
    const problems = (guard: Record<string, unknown>): string[] => {
      const r = validateConfig({ ...base, guard });
      return r.ok ? [] : r.problems;
    };
    assert.match(problems({ max_tracked: 0 }).join("\n"), /^guard\.max_tracked: expected a positive integer/m);
    assert.match(problems({ saturation: { ipv4_prefix: 33 } }).join("\n"), /^guard\.saturation\.ipv4_prefix: /m);
    assert.match(problems({ saturation: { ipv6_prefix: 0 } }).join("\n"), /^guard\.saturation\.ipv6_prefix: /m);
    assert.match(problems({ saturation: { duration: "never" } }).join("\n"), /^guard\.saturation\.duration: /m);
    assert.match(problems({ saturation: { colour: 1 } }).join("\n"), /^guard\.saturation\.colour: unknown key/m);
    const ok = configOf({ ...base });
    assert.equal(ok.guard.max_tracked, 65_536);
    assert.deepEqual(ok.guard.saturation, { duration: 600_000, ipv4_prefix: 24, ipv6_prefix: 48, max_prefixes: 16_384 });
  });

  test("a reload to a smaller table keeps the bans it can hold and counts the rest as live evictions", () => {
    const clock = new ManualClock();
    const { guard } = guardOf({ ban: { failures: 1 }, max_tracked: 10 }, clock);
    for (let i = 0; i < 10; i++) failLogins(guard, churnAddress(i), 1);
    const next = configOf({ guard: { ban: { failures: 1 }, max_tracked: 4 }, listener: [{ name: "l", kind: "connect", bind: "127.0.0.1:0" }] }).guard;
    guard.configure(next);
    const st = guard.saturation();
    assert.equal(st.maxTracked, 4);
    assert.equal(st.tracked, 4);
    assert.equal(st.liveEvictions, 6);
    assert.equal(st.active, true);
  });
});
