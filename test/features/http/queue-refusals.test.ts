/**
 * A request that finds the queue full is a refusal, not a queued request: it
 * is not counted in `queued`, does not call the onQueued hook and is not
 * logged as "request queued"; through the gateway it is one `event=limited
 * reason=queue_full` line, while the request that really waits is logged as
 * queued once and passes when the window opens.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../../src/core/clock.js";
import { HttpLimiter, type Verdict } from "../../../src/features/http/index.js";
import { recordingLogger } from "./helpers.js";
import { curl, startFromToml, startUpstream, type RunningHttp, type Upstream } from "./gateway-helpers.js";
import { sleep } from "../../helpers/wait.js";

const req = (n: number) => ({ method: "GET", url: "/authorize", headers: { "x-n": String(n) }, remoteAddress: "192.0.2.1" });

test("a full queue's refusal is not counted, hooked or logged as queued", async () => {
  const clock = new ManualClock(0);
  const logger = recordingLogger();
  const hooked: string[] = [];
  const refusedHook: string[] = [];
  const limiter = new HttpLimiter({
    clock,
    logger,
    hooks: { onQueued: (route, l) => hooked.push(`${route}/${l}`), onReject: (route, l) => refusedHook.push(`${route}/${l}`) },
    routes: [{ name: "authorize", match: "/authorize", limit: { algorithm: "fixed_window", permitLimit: 1, windowMs: 60_000, queueLimit: 1 } }],
  });
  try {
    const first = limiter.decide(req(1)) as Verdict;
    assert.equal(first.allowed, true);
    const second = limiter.decide(req(2));
    assert.ok(second instanceof Promise, "the second request waits");
    assert.equal(limiter.queued, 1);
    const third = await limiter.decide(req(3));
    assert.equal(third.status, 429);
    assert.equal(limiter.queued, 1, "the refused request never counted as waiting");
    assert.deepEqual(hooked, ["authorize/authorize"]);
    assert.deepEqual(refusedHook, ["authorize/authorize"]);
    assert.equal(logger.entries.filter((e) => e.msg === "request queued").length, 1);
    assert.equal(logger.entries.filter((e) => e.msg === "queued request left the queue").length, 0);
    const throttled = logger.entries.filter((e) => e.msg === "request throttled");
    assert.equal(throttled.length, 1);
    assert.equal(throttled[0]!.fields.reason, "queue_full");
    clock.set(60_000);
    assert.equal((await second).allowed, true);
    assert.equal(limiter.queued, 0);
    assert.deepEqual(hooked, ["authorize/authorize"]);
  } finally {
    limiter.dispose();
  }
});

test("a disconnect before the request takes a place logs no queue event", async () => {
  const logger = recordingLogger();
  const withLog = new HttpLimiter({
    clock: new ManualClock(0),
    logger,
    routes: [{ name: "authorize", match: "/authorize", limit: { algorithm: "fixed_window", permitLimit: 1, windowMs: 60_000, queueLimit: 1 } }],
  });
  try {
    withLog.decide(req(1));
    const gone = new AbortController();
    gone.abort();
    const v = await withLog.decide(req(2), () => gone.signal);
    assert.equal(v.aborted, true);
    assert.equal(withLog.queued, 0);
    assert.deepEqual(logger.entries.map((e) => e.msg), []);
  } finally {
    withLog.dispose();
  }
});

let up: Upstream | undefined;
let g: RunningHttp | undefined;
after(async () => {
  await g?.stop();
  await up?.close();
});

test("through the gateway: the full queue's 429 is event=limited reason=queue_full, the waiting request is logged queued once", async () => {
  up = await startUpstream();
  const clock = new ManualClock(0);
  g = await startFromToml(
    `
[log]
format = "json"

[[listener]]
name = "api"
kind = "http"
bind = "127.0.0.1:0"
upstream = "http://127.0.0.1:${up.port}"

[[http.route]]
name = "authorize"
match = "/authorize"
limit = { algorithm = "fixed_window", permit_limit = 1, window = "00:01:00", queue_limit = 1, key = "global" }
`,
    { clock },
  );
  const url = `http://127.0.0.1:${g.ports.api}/authorize`;
  assert.equal((await curl(["--interface", "127.0.0.2", url])).status, 200);
  const waiting = curl(["--interface", "127.0.0.3", url]);
  const log = g.log;
  const queuedLines = () => log.records().filter((r) => r.msg === "request queued");
  for (let i = 0; i < 400 && queuedLines().length === 0; i++) await sleep(25);
  assert.equal(queuedLines().length, 1);
  const full = await curl(["--interface", "127.0.0.4", url]);
  assert.equal(full.status, 429);
  const limited = log.events("limited");
  assert.equal(limited.length, 1);
  assert.equal(limited[0]!.remote_addr, "127.0.0.4");
  assert.equal(limited[0]!.reason, "queue_full");
  assert.equal(limited[0]!.key, "global");
  assert.equal(queuedLines().length, 1, "the refused request was not logged as queued");
  clock.advance(60_000);
  assert.equal((await waiting).status, 200);
  assert.equal(log.events("limited").length, 1);
});
