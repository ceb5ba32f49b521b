/**
 * The http listener end to end: curl -> rate-limiting reverse proxy -> a
 * real upstream node:http server. Route limits and headers, forwarding
 * headers under the trusted-proxy rules, hop-by-hop stripping, form-field
 * keys with the body passed on intact, lockout from upstream statuses, and
 * the bounds: body size, header size, client and upstream timeouts.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import http from "node:http";
import net from "node:net";
import { after, describe, test } from "node:test";
import { ManualClock } from "../../../src/core/clock.js";
import { type HttpLimiterOptions, type HttpProxyOptions, createHttpProxyServer } from "../../../src/features/http/index.js";
import { close, listen, parseRateLimit, recordingLogger, request } from "./helpers.js";

const servers: http.Server[] = [];
after(async () => {
  await Promise.all(servers.map(close));
});

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** An upstream that records what reaches it and answers per path. */
async function upstream() {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      if (req.url === "/hang") return; // never answers
      if (req.url === "/login") {
        res.statusCode = new URLSearchParams(body).get("password") === "right" ? 200 : 401;
        res.end();
        return;
      }
      res.setHeader("x-upstream", "yes");
      res.setHeader("connection", "keep-alive, x-upstream-private");
      res.setHeader("x-upstream-private", "hop");
      res.end(`upstream saw ${req.method} ${req.url}`);
    });
  });
  servers.push(server);
  const port = await listen(server);
  return { seen, port };
}

const rules = (extra: Partial<HttpLimiterOptions> = {}): HttpLimiterOptions => ({
  clock: new ManualClock(0),
  trustedProxies: ["127.0.0.3/32"],
  lockout: { maxFailures: 2, windowMs: 60_000, durationMs: 300_000 },
  routes: [
    { name: "token", match: "/token", limit: { algorithm: "fixed_window", permitLimit: 2, windowMs: 60_000, key: "client_id" } },
    { name: "login", match: "/login", lockout: { subject: "user" }, limit: { algorithm: "fixed_window", permitLimit: 100, windowMs: 60_000 } },
  ],
  ...extra,
});

async function proxy(up: { port: number }, o: Partial<HttpProxyOptions> = {}) {
  const logger = recordingLogger();
  const server = createHttpProxyServer({ upstream: `http://127.0.0.1:${up.port}`, rules: rules(), logger, ...o });
  servers.push(server);
  const port = await listen(server);
  return { port, server, logger };
}

interface CurlReply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

function curl(args: string[]): Promise<CurlReply> {
  return new Promise((resolve, reject) => {
    execFile("curl", ["-s", "-i", "--max-time", "10", "-H", "Expect:", ...args], { timeout: 15_000, encoding: "latin1", maxBuffer: 8 << 20 }, (err, stdout) => {
      if (err && !stdout) return reject(err);
      // Skip any 1xx heads; the last head is the response.
      let rest = stdout;
      let head: string;
      do {
        const i = rest.indexOf("\r\n\r\n");
        if (i < 0) return reject(new Error(`no response head in ${JSON.stringify(stdout.slice(0, 200))}`));
        head = rest.slice(0, i);
        rest = rest.slice(i + 4);
      } while (/^HTTP\/[\d.]+ 1\d\d/.test(head));
      const [statusLine, ...lines] = head.split("\r\n");
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const c = l.indexOf(":");
        headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
      }
      resolve({ status: Number(statusLine!.split(" ")[1]), headers, body: rest });
    });
  });
}

describe("http listener with curl and a real upstream", () => {
  test("forwards within the limit with RateLimit headers; rejects past it without reaching the upstream", async () => {
    const up = await upstream();
    const p = await proxy(up);
    const url = `http://127.0.0.1:${p.port}/token?client_id=app1`;
    const a = await curl([url]);
    assert.equal(a.status, 200);
    assert.equal(a.body, "upstream saw GET /token?client_id=app1");
    assert.equal(a.headers["x-upstream"], "yes");
    assert.equal(a.headers["x-upstream-private"], undefined, "a header the upstream marked hop-by-hop stays on its hop");
    assert.deepEqual(parseRateLimit(a.headers["ratelimit"]), [{ name: "token", params: { r: 1, t: 60 } }]);
    assert.equal((await curl([url])).status, 200);
    const r = await curl([url]);
    assert.equal(r.status, 429);
    assert.equal(r.headers["retry-after"], "60");
    assert.equal(r.headers["content-type"], "application/problem+json");
    assert.deepEqual(JSON.parse(r.body)["violated-policies"], ["token"]);
    assert.equal(up.seen.length, 2, "the rejected request never reached the upstream");
    assert.equal((await curl([`http://127.0.0.1:${p.port}/other`])).status, 200);
  });

  test("X-Forwarded-For: a spoof from an untrusted client is replaced; a trusted proxy's chain is extended", async () => {
    const up = await upstream();
    const p = await proxy(up);
    await curl(["--interface", "127.0.0.2", "-H", "X-Forwarded-For: 6.6.6.6", "-H", "Forwarded: for=6.6.6.6", `http://127.0.0.1:${p.port}/a`]);
    const spoofed = up.seen.at(-1)!;
    assert.equal(spoofed.headers["x-forwarded-for"], "127.0.0.2");
    assert.equal(spoofed.headers["forwarded"], `for=127.0.0.2;proto=http;host="127.0.0.1:${p.port}"`);
    assert.equal(spoofed.headers["x-forwarded-proto"], "http");
    await curl(["--interface", "127.0.0.3", "-H", "X-Forwarded-For: 198.51.100.7", `http://127.0.0.1:${p.port}/b`]);
    assert.equal(up.seen.at(-1)!.headers["x-forwarded-for"], "198.51.100.7, 127.0.0.3");
    assert.equal(p.logger.entries.filter((e) => e.msg.includes("untrusted peer")).length, 1);
  });

  test("hop-by-hop request headers, including those named in Connection, are not forwarded", async () => {
    const up = await upstream();
    const p = await proxy(up);
    await curl(["-H", "Connection: x-secret", "-H", "X-Secret: 1", "-H", "Proxy-Authorization: Basic eDp5", "-H", "X-Kept: 2", `http://127.0.0.1:${p.port}/c`]);
    const h = up.seen.at(-1)!.headers;
    assert.equal(h["x-secret"], undefined);
    assert.equal(h["proxy-authorization"], undefined);
    assert.equal(h["x-kept"], "2");
  });

  test("a form-field key is read from the body, and the body still reaches the upstream intact", async () => {
    const up = await upstream();
    const p = await proxy(up);
    const post = (id: string) => curl(["-X", "POST", "--data-raw", `grant_type=client_credentials&client_id=${id}&scope=a%20b`, `http://127.0.0.1:${p.port}/token`]);
    assert.equal((await post("c1")).status, 200);
    assert.equal(up.seen.at(-1)!.body, "grant_type=client_credentials&client_id=c1&scope=a%20b");
    assert.equal((await post("c1")).status, 200);
    assert.equal((await post("c1")).status, 429);
    assert.equal((await post("c2")).status, 200);
  });

  test("failed logins upstream lock the subject at the proxy, whichever client IP", async () => {
    const up = await upstream();
    const p = await proxy(up);
    const login = (pw: string, from: string) => curl(["--interface", from, "-X", "POST", "--data-raw", `username=alice&password=${pw}`, `http://127.0.0.1:${p.port}/login`]);
    assert.equal((await login("wrong", "127.0.0.4")).status, 401);
    assert.equal((await login("wrong", "127.0.0.5")).status, 401);
    const before = up.seen.length;
    const r = await login("right", "127.0.0.6");
    assert.equal(r.status, 429);
    assert.equal(r.headers["retry-after"], "300");
    assert.equal(up.seen.length, before, "a locked subject does not reach the upstream");
  });
});

describe("http listener bounds", () => {
  test("bodies over maxBodySize get 413, declared or streamed", async () => {
    const up = await upstream();
    const p = await proxy(up, { maxBodySize: 1000 });
    const big = "x".repeat(5000);
    assert.equal((await curl(["-X", "POST", "--data-raw", big, `http://127.0.0.1:${p.port}/upload`])).status, 413);
    const chunked = await curl(["-X", "POST", "-H", "Transfer-Encoding: chunked", "--data-raw", big, `http://127.0.0.1:${p.port}/upload`]);
    assert.equal(chunked.status, 413);
    const ok = await curl(["-X", "POST", "--data-raw", "x".repeat(900), `http://127.0.0.1:${p.port}/upload`]);
    assert.equal(ok.status, 200);
    assert.ok(up.seen.every((s) => s.body.length < big.length), "no oversized body was delivered upstream");
    assert.equal(up.seen.at(-1)!.body.length, 900);
  });

  test("request heads over maxHeaderSize get 431", async () => {
    const up = await upstream();
    const p = await proxy(up, { maxHeaderSize: 4096 });
    const r = await curl(["-H", `X-Big: ${"y".repeat(8000)}`, `http://127.0.0.1:${p.port}/a`]);
    assert.equal(r.status, 431);
    assert.equal(up.seen.length, 0);
  });

  test("an upstream that does not answer in time gets 504; one that is down gets 502; no error details leak", async () => {
    const up = await upstream();
    const p = await proxy(up, { upstreamHeadersTimeoutMs: 300 });
    const slow = await curl([`http://127.0.0.1:${p.port}/hang`]);
    assert.equal(slow.status, 504);
    assert.deepEqual(JSON.parse(slow.body), { type: "about:blank", title: "Gateway Timeout", status: 504 });
    const dead = net.createServer();
    const deadPort = await listen(dead);
    await new Promise((r) => dead.close(r));
    const p2 = await proxy({ port: deadPort });
    const down = await curl([`http://127.0.0.1:${p2.port}/x`]);
    assert.equal(down.status, 502);
    assert.doesNotMatch(down.body, /ECONNREFUSED|at |Error/);
    assert.ok(p2.logger.entries.some((e) => e.msg === "upstream request failed" && e.fields.status === 502));
  });

  test("a client that sends its head too slowly is cut off", async () => {
    const up = await upstream();
    const p = await proxy(up, { headersTimeoutMs: 300 });
    const sock = net.connect(p.port, "127.0.0.1");
    sock.write("GET /a HTTP/1.1\r\nHost: x\r\n");
    const started = Date.now();
    const reply = await new Promise<string>((resolve, reject) => {
      let data = "";
      const timer = setTimeout(() => reject(new Error("slow client not cut off")), 5_000);
      sock.on("data", (d) => (data += d.toString()));
      sock.on("close", () => {
        clearTimeout(timer);
        resolve(data);
      });
    });
    assert.match(reply, /^HTTP\/1\.1 408/);
    assert.ok(Date.now() - started < 4_000);
    assert.equal(up.seen.length, 0);
  });

  test("a request target that is not a path gets 400 and never reaches the upstream", async () => {
    const up = await upstream();
    const p = await proxy(up);
    const sock = net.connect(p.port, "127.0.0.1");
    sock.write("GET not-a-path HTTP/1.1\r\nHost: x\r\n\r\n");
    const reply = await new Promise<string>((resolve, reject) => {
      let data = "";
      const timer = setTimeout(() => reject(new Error("no answer to a bad target")), 5_000);
      sock.on("data", (d) => {
        data += d.toString();
        if (data.includes("\r\n\r\n")) {
          clearTimeout(timer);
          sock.destroy();
          resolve(data);
        }
      });
      sock.on("error", reject);
    });
    assert.match(reply, /^HTTP\/1\.1 400/);
    assert.equal(up.seen.length, 0);
  });

  test("the proxy also works with Node's own HTTP client (keep-alive off)", async () => {
    const up = await upstream();
    const p = await proxy(up);
    const r = await request(p.port, { method: "PUT", path: "/put", body: "hello", headers: { "content-type": "text/plain" } });
    assert.equal(r.status, 200);
    assert.equal(up.seen.at(-1)!.body, "hello");
    assert.equal(up.seen.at(-1)!.method, "PUT");
  });
});
