/**
 * The small version of `npm run stress -- fuzz`: a few hundred seeded
 * mutations per protocol (CONNECT, TLS ClientHello, HTTP, UDP) against a real
 * `portcullis run` process. The gateway must stay up, close every connection
 * in bounded time, never answer with a stack trace, its own name or a 407,
 * show unauthenticated clients only the mask site, and keep serving a
 * legitimate client. The close bound (20 s) is four times the longest timeout
 * in the target configuration (the http keep-alive, 5 s), for a loaded machine.
 * Also: the mutator is reproducible, and the reply checks
 * do catch the leaks they look for.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { seededRng } from "../../src/core/random.js";
import { connectSeeds, clientHelloLengthFields, captureClientHello } from "../../bench/stress/fuzz/corpus.js";
import { replyProblem, runFuzz } from "../../bench/stress/fuzz/fuzzer.js";
import { MUTATIONS, mutate } from "../../bench/stress/fuzz/mutate.js";
import { MASK_REPLY, startTarget, type Target } from "../../bench/stress/fuzz/target.js";

describe("fuzzer parts", () => {
  test("the same seed gives the same mutations; every mutation kind changes or keeps the input as it says", () => {
    const seeds = connectSeeds("u", "p", 9);
    const draw = (seed: number): string[] => {
      const rng = seededRng(seed);
      return Array.from({ length: 200 }, () => mutate(rng, seeds[0]!, seeds[1]!).bytes.toString("base64"));
    };
    assert.deepEqual(draw(5), draw(5));
    assert.notDeepEqual(draw(5), draw(6));
    const rng = seededRng(1);
    for (const kind of MUTATIONS) {
      const m = mutate(rng, seeds[2]!, seeds[0]!, kind);
      assert.equal(m.kind, kind);
      if (kind === "none") assert.deepEqual(m.bytes, seeds[2]!.bytes);
      if (kind === "truncate") assert.ok(m.bytes.length < seeds[2]!.bytes.length);
      if (kind === "huge-header") assert.ok(m.bytes.length >= seeds[2]!.bytes.length + 4096);
      if (kind === "length-lie") assert.match(m.bytes.toString("latin1"), /Content-Length: /);
    }
  });

  test("a length lie in a ClientHello rewrites one of its length fields", async () => {
    const hello = await captureClientHello({ servername: "served.test" });
    assert.equal(hello[0], 0x16);
    const fields = clientHelloLengthFields(hello);
    assert.ok(fields.length >= 6, `${fields.length} length fields`);
    assert.equal(hello.readUInt16BE(3), hello.length - 5, "the record length is the first field");
    const seed = { name: "hello", bytes: hello, lengthFields: fields };
    const rng = seededRng(3);
    let changed = 0;
    for (let i = 0; i < 50; i++) {
      const m = mutate(rng, seed, seed, "length-lie");
      assert.equal(m.bytes.length, hello.length);
      const diff = [...m.bytes.keys()].filter((k) => m.bytes[k] !== hello[k]);
      if (diff.length > 0) changed++;
      assert.ok(diff.every((k) => fields.some((f) => k >= f.offset && k < f.offset + f.width)), "only length bytes change");
    }
    assert.ok(changed > 40, `${changed} of 50 lies changed the bytes`);
  });

  test("the reply checks catch stack traces, the product's name, a 407 and anything but the mask site", () => {
    const stack = Buffer.from("HTTP/1.1 500 x\r\n\r\nTypeError: boom\n    at parse (/app/src/gateway/connect.ts:10:5)");
    assert.match(replyProblem("http", stack, false)!, /stack trace/);
    assert.match(replyProblem("http", Buffer.from("HTTP/1.1 400 Bad\r\nServer: Portcullis\r\n\r\n"), false)!, /name/);
    assert.match(replyProblem("connect", Buffer.from("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"), true)!, /407/);
    assert.match(replyProblem("connect", Buffer.from("HTTP/1.1 400 Bad Request\r\n\r\n"), false)!, /mask/);
    assert.match(replyProblem("tls", Buffer.from("hello"), false)!, /TLS record/);
    assert.equal(replyProblem("connect", Buffer.from(MASK_REPLY), false), undefined);
    assert.equal(replyProblem("connect", Buffer.from(MASK_REPLY.slice(0, 10)), false), undefined);
    assert.equal(replyProblem("connect", Buffer.alloc(0), false), undefined);
    assert.equal(replyProblem("connect", Buffer.from("HTTP/1.1 403 Forbidden\r\n\r\n"), true), undefined);
    assert.equal(replyProblem("tls", Buffer.from([0x15, 3, 3, 0, 2, 2, 112]), false), undefined);
  });
});

describe("fuzzing a real gateway process", { timeout: 240_000 }, () => {
  let target: Target;
  before(async () => {
    target = await startTarget();
  });
  after(async () => {
    await target?.close();
  });

  test("200 mutated inputs per protocol: no crash, no leak, bounded close, the legitimate client served throughout", async () => {
    const r = await runFuzz(target, { seed: 20261123, perProtocol: 200, timeBudgetMs: 150_000, closeBoundMs: 20_000, legitEvery: 100 });
    const sent = Object.values(r.sent).reduce((a, b) => a + b, 0);
    console.log(`# fuzz: ${sent} inputs in ${r.elapsedMs} ms, longest close ${r.maxCloseMs} ms, legitimate checks ${r.legitChecks}`);
    assert.deepEqual(r.findings, []);
    assert.deepEqual(r.sent, { connect: 200, tls: 200, http: 200, udp: 200 }, "every input was sent within the time budget");
    assert.equal(r.crashed, false);
    assert.ok(r.legitChecks >= 8 && r.legitFailures === 0);
    assert.ok(r.maxCloseMs <= 20_000);
  });
});
