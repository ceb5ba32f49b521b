/**
 * Path normalisation and route patterns, as pure functions.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { requestPath } from "../../../src/features/http/path.js";
import { compileMethods, compilePattern } from "../../../src/features/http/route-match.js";

test("requestPath strips the query and normalises what a router would", () => {
  const cases: [string, string | undefined][] = [
    ["/token?x=1", "/token"],
    ["/a//b", "/a/b"],
    ["/a/./b/../c", "/a/c"],
    ["/%2e%2e/internal", "/internal"],
    ["/%69nternal/%41", "/internal/A"],
    ["/a%2Fb", "/a/b"],
    ["/a%20b", "/a%20b"],
    ["/a\\..\\internal", "/internal"],
    ["http://example.test/x/../y?q", "/y"],
    ["*", "*"],
    ["garbage", undefined],
    ["", undefined],
  ];
  for (const [input, expected] of cases) assert.equal(requestPath(input), expected, input);
});

test("patterns: literal, prefix, parameters, everything", () => {
  const lit = compilePattern("/token");
  assert.deepEqual(["/token", "/token/", "/tokens", "/token/x", "/"].map(lit.test), [true, true, false, false, false]);
  const pre = compilePattern("/internal/*");
  assert.deepEqual(["/internal", "/internal/", "/internal/a/b", "/internalx", "/x/internal"].map(pre.test), [true, true, true, false, false]);
  const param = compilePattern("/users/:id/keys");
  assert.deepEqual(["/users/7/keys", "/users/7/keys/", "/users//keys", "/users/7/8/keys", "/users/a.b/keys"].map(param.test), [true, true, false, false, true]);
  const dots = compilePattern("/v1.0/:x");
  assert.equal(dots.test("/v1x0/a"), false, "a dot in a pattern is literal");
  assert.equal(compilePattern("*").test("/anything"), true);
  assert.throws(() => compilePattern("/a/*/b"), /only allowed as the last segment/);
  assert.throws(() => compilePattern(""), /non-empty/);
});

test("methods are case-insensitive and GET covers HEAD", () => {
  const m = compileMethods(["get", "Post"])!;
  assert.deepEqual([...m].sort(), ["GET", "HEAD", "POST"]);
  assert.equal(compileMethods(undefined), undefined);
  assert.throws(() => compileMethods([]), /non-empty/);
});
