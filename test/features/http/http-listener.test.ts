import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rm } from "node:fs/promises";
import { makeTestPki } from "../../helpers/certs.js";
import { ManualClock } from "../../../src/core/clock.js";
import { GatewayMetrics } from "../../../src/metrics/gateway-metrics.js";
import { configFromToml, curl, curlTimes, startFromToml, startUpstream, type RunningHttp, type Upstream } from "./gateway-helpers.js";
import { CLI } from "../../helpers/cli.js";

const root = new URL("../../..", import.meta.url).pathname;

/** A gateway config: one http listener in front of `upstream`, with `http` as the [http] section. */
function toml(upstreamPort: number, http: string, listenerExtra = "", guard = ""): string {
  return `
[log]
format = "json"

[guard]
${guard}

[[listener]]
name = "api"
kind = "http"
bind = "127.0.0.1:0"
upstream = "http://127.0.0.1:${upstreamPort}"
${listenerExtra}

${http}
`;
}

const ROUTES = `
[http]
trusted_proxies = ["10.0.0.0/8"]

[[http.route]]
name = "token"
match = "/token"
methods = ["GET", "POST"]
limit = { algorithm = "fixed_window", permit_limit = 3, window = "00:01:00", queue_limit = 0, key = "ip" }

[[http.route]]
name = "other"
match = "/other/*"
limit = { algorithm = "fixed_window", permit_limit = 3, window = "00:01:00", key = "ip" }
`;

describe("http listener in the gateway", () => {
  let up: Upstream;
  const running: RunningHttp[] = [];
  const start = async (text: string, clock = new ManualClock(0)) => {
    const r = await startFromToml(text, { clock });
    running.push(r);
    return { ...r, url: (path: string) => `http://127.0.0.1:${r.ports.api}${path}` };
  };

  before(async () => {
    up = await startUpstream();
  });
  after(async () => {
    for (const r of running) await r.stop();
    await up.close();
  });

  test("requests pass through with the upstream's body", async () => {
    const g = await start(toml(up.port, ROUTES));
    const r = await curl([g.url("/hello/world?x=1")]);
    assert.equal(r.status, 200);
    assert.equal(r.body, "upstream saw /hello/world?x=1");
    // A path no route matches carries no rate-limit headers.
    assert.equal(r.headers["ratelimit-policy"], undefined);
    const t = await curl([g.url("/token")]);
    assert.equal(t.status, 200);
    assert.equal(t.body, "upstream saw /token");
    assert.equal(t.headers["ratelimit-policy"], '"token";q=3;w=60');
  });

  test("the (N+1)th request to a limited route gets 429 with Retry-After, RateLimit headers and a problem document; another route is unaffected", async () => {
    const clock = new ManualClock(0);
    const g = await start(toml(up.port, ROUTES), clock);
    const metrics = new GatewayMetrics(g.gateway, { processMetrics: false });
    try {
      const firstThree = await curlTimes(3, ["--interface", "127.0.0.2", g.url("/token")]);
      assert.deepEqual(firstThree.map((r) => r.status), [200, 200, 200]);
      assert.deepEqual(firstThree.map((r) => r.headers.ratelimit), ['"token";r=2;t=60', '"token";r=1;t=60', '"token";r=0;t=60']);
      clock.advance(15_000);
      const fourth = await curl(["--interface", "127.0.0.2", g.url("/token")]);
      assert.equal(fourth.status, 429);
      assert.equal(fourth.headers["retry-after"], "45");
      assert.equal(fourth.headers["ratelimit-policy"], '"token";q=3;w=60');
      assert.equal(fourth.headers.ratelimit, '"token";r=0;t=45');
      assert.equal(fourth.headers["content-type"], "application/problem+json");
      const problem = JSON.parse(fourth.body) as Record<string, unknown>;
      assert.equal(problem.status, 429);
      assert.deepEqual(problem["violated-policies"], ["token"]);
      // The upstream never saw the refused request.
      assert.equal(up.seen.filter((s) => s.path === "/token").length >= 3, true);
      const other = await curl(["--interface", "127.0.0.2", g.url("/other/x")]);
      assert.equal(other.status, 200);
      assert.equal(other.body, "upstream saw /other/x");
      // Refusals reach the gateway's registry.
      const text = await metrics.expose();
      assert.match(text, /portcullis_http_rejections_total\{route="token",limiter="token"\} 1\b/);
      // The window ends: the route lets requests through again.
      clock.advance(45_000);
      assert.equal((await curl(["--interface", "127.0.0.2", g.url("/token")])).status, 200);
    } finally {
      metrics.close();
    }
  });

  test("a spoofed X-Forwarded-For from an untrusted peer does not change the key; distinct client addresses get distinct buckets", async () => {
    const g = await start(toml(up.port, ROUTES));
    const seenBefore = up.seen.length;
    const spoofed = [];
    for (let i = 0; i < 4; i++) spoofed.push(await curl(["--interface", "127.0.0.2", "-H", `X-Forwarded-For: 198.51.100.${i + 1}`, g.url("/token")]));
    assert.deepEqual(spoofed.map((r) => r.status), [200, 200, 200, 429]);
    // The client's claim is not passed on either: the upstream sees the peer alone.
    assert.deepEqual(up.seen.slice(seenBefore).map((s) => s.xff), ["127.0.0.2", "127.0.0.2", "127.0.0.2"]);
    const neighbour = await curl(["--interface", "127.0.0.3", g.url("/token")]);
    assert.equal(neighbour.status, 200);
    assert.equal(neighbour.headers.ratelimit, '"token";r=2;t=60');
  });

  test("a selected profile gives its numbers to routes without their own, and a field override wins", async () => {
    const lockdown = `
[http]
profile = "lockdown"

[[http.route]]
name = "any"
match = "*"
`;
    const g = await start(toml(up.port, lockdown));
    const replies = await curlTimes(6, ["--interface", "127.0.0.4", g.url("/a")]);
    assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 200, 200, 429]);
    assert.equal(replies[0]!.headers["ratelimit-policy"], '"any";q=5;w=300');
    assert.equal(replies[5]!.headers["retry-after"], "300");

    const overridden = lockdown.replace('profile = "lockdown"', 'profile = { name = "lockdown", permit_limit = 2 }');
    const h = await start(toml(up.port, overridden));
    const two = await curlTimes(3, ["--interface", "127.0.0.4", h.url("/a")]);
    assert.deepEqual(two.map((r) => r.status), [200, 200, 429]);
    assert.equal(two[0]!.headers["ratelimit-policy"], '"any";q=2;w=300');
  });

  test("[http.lockout] with a route's failure statuses locks a user after max_failures, from any address, and the upstream's status decides", async () => {
    const rules = `
[http]
lockout = { max_failures = 2, window = "15m", duration = "15m" }

[[http.route]]
name = "login"
match = "/login"
methods = ["POST"]
limit = { algorithm = "fixed_window", permit_limit = 100, window = "00:01:00" }
lockout = { subject = "user", failure_statuses = [401] }
`;
    const g = await start(toml(up.port, rules));
    const login = (from: string, user: string, password: string) => curl(["--interface", from, "--data", `username=${user}&password=${password}`, g.url("/login")]);
    assert.equal((await login("127.0.0.10", "alice", "wrong")).status, 401);
    assert.equal((await login("127.0.0.10", "alice", "wrong")).status, 401);
    // Locked now: even the right password from another address is refused before the upstream.
    const locked = await login("127.0.0.11", "alice", "right");
    assert.equal(locked.status, 429);
    assert.deepEqual((JSON.parse(locked.body) as Record<string, unknown>)["violated-policies"], ["lockout"]);
    assert.equal(locked.headers["retry-after"], "900");
    // Another user is not affected.
    const bob = await login("127.0.0.10", "bob", "right");
    assert.equal(bob.status, 200);
    assert.equal(bob.body, "welcome");
  });

  test("a client_id key with a header name counts each client id apart, and a request without one by its address", async () => {
    const rules = `
[[http.route]]
name = "api"
match = "/api/*"
limit = { algorithm = "fixed_window", permit_limit = 1, window = "00:01:00", key = { kind = "client_id", header = "x-client-id" } }
`;
    const g = await start(toml(up.port, rules));
    const as = (id: string) => curl(["--interface", "127.0.0.12", "-H", `X-Client-Id: ${id}`, g.url("/api/x")]);
    assert.deepEqual([(await as("one")).status, (await as("one")).status, (await as("two")).status], [200, 429, 200]);
    const anonymous = await curlTimes(2, ["--interface", "127.0.0.12", g.url("/api/x")]);
    assert.deepEqual(anonymous.map((r) => r.status), [200, 429]);
  });

  test("a shadow route computes its limit but lets every request through", async () => {
    const rules = `
[[http.route]]
name = "watched"
match = "/watched"
shadow = true
limit = { algorithm = "fixed_window", permit_limit = 1, window = "00:01:00" }
`;
    const g = await start(toml(up.port, rules));
    const replies = await curlTimes(3, ["--interface", "127.0.0.17", g.url("/watched")]);
    assert.deepEqual(replies.map((r) => r.status), [200, 200, 200]);
    const shadowLines = g.log.records().filter((r) => r.msg === "request would be throttled (shadow)");
    assert.equal(shadowLines.length, 2);
  });

  test("headers mode legacy sends RateLimit-Limit / -Remaining / -Reset", async () => {
    const g = await start(toml(up.port, ROUTES.replace('trusted_proxies = ["10.0.0.0/8"]', 'headers = "legacy"')));
    const r = await curl(["--interface", "127.0.0.5", g.url("/token")]);
    assert.equal(r.headers["ratelimit-limit"], "3");
    assert.equal(r.headers["ratelimit-remaining"], "2");
    assert.equal(r.headers["ratelimit-policy"], undefined);
  });

  test("the guard's deny list applies at accept: no HTTP answer, a refusal event", async () => {
    const g = await start(toml(up.port, ROUTES, "", 'deny = ["127.0.0.6"]'));
    const refused: string[] = [];
    g.gateway.events.on("refused", (e) => refused.push(`${e.listener}:${e.limiter}:${e.remote_addr}`));
    await assert.rejects(curl(["--interface", "127.0.0.6", g.url("/hello")]), /curl failed/);
    assert.deepEqual(refused, ["api:deny_list:127.0.0.6"]);
    assert.equal((await curl(["--interface", "127.0.0.7", g.url("/hello")])).status, 200);
  });

  test("reload applies new routes to the next request on an open keep-alive connection", async () => {
    const g = await start(toml(up.port, ROUTES));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1, localAddress: "127.0.0.8" });
    const get = (path: string) =>
      new Promise<{ status: number; policy: string | undefined; reused: boolean }>((resolve, reject) => {
        const req = http.get({ host: "127.0.0.1", port: g.ports.api, path, agent, timeout: 10_000 }, (res) => {
          res.resume();
          res.on("end", () => resolve({ status: res.statusCode ?? 0, policy: res.headers["ratelimit-policy"] as string | undefined, reused: req.reusedSocket }));
        });
        req.on("timeout", () => req.destroy(new Error("no answer within 10 s")));
        req.on("error", reject);
      });
    try {
      const before = await get("/fresh");
      assert.deepEqual(before, { status: 200, policy: undefined, reused: false });
      // Same listener name, kind and bind (port 0 as configured): the listener and its connections stay.
      await g.gateway.reload(configFromToml(toml(up.port, `${ROUTES}\n[[http.route]]\nname = "fresh"\nmatch = "/fresh"\nlimit = { algorithm = "fixed_window", permit_limit = 1, window = "10s" }\n`)));
      const after1 = await get("/fresh");
      const after2 = await get("/fresh");
      assert.deepEqual(after1, { status: 200, policy: '"fresh";q=1;w=10', reused: true });
      assert.deepEqual(after2, { status: 429, policy: '"fresh";q=1;w=10', reused: true });
    } finally {
      agent.destroy();
    }
  });

  test("reload keeps the counters when [http] did not change, and sends new connections to a new upstream", async () => {
    const other = await startUpstream();
    try {
      const g = await start(toml(up.port, ROUTES));
      assert.deepEqual((await curlTimes(3, ["--interface", "127.0.0.13", g.url("/token")])).map((r) => r.status), [200, 200, 200]);
      const next = configFromToml(toml(other.port, ROUTES, "", "max_connections_per_ip = 50"));
      await g.gateway.reload(next);
      // Same rules: the bucket filled before the reload is still full.
      assert.equal((await curl(["--interface", "127.0.0.13", g.url("/token")])).status, 429);
      const moved = await curl(["--interface", "127.0.0.14", g.url("/moved")]);
      assert.equal(moved.status, 200);
      assert.deepEqual(other.seen.map((x) => x.path), ["/moved"]);
    } finally {
      await other.close();
    }
  });

  test("with [listener.tls] the http listener terminates TLS after the guard and applies the routes (curl over https)", async () => {
    const pki = await makeTestPki();
    try {
      const tls = `[listener.tls]\ncert = "${pki.serverCertPath}"\nkey = "${pki.serverKeyPath}"`;
      const g = await start(toml(up.port, ROUTES, tls));
      const url = `https://127.0.0.1:${g.ports.api}/token`;
      const replies = await curlTimes(4, ["--cacert", pki.caCertPath, "--interface", "127.0.0.15", url]);
      assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 429]);
      assert.equal(replies[0]!.body, "upstream saw /token");
      // The client address survives TLS termination: another address has its own bucket.
      assert.equal((await curl(["--cacert", pki.caCertPath, "--interface", "127.0.0.16", url])).status, 200);
    } finally {
      await rm(pki.dir, { recursive: true, force: true });
    }
  });

  test("a client that sends its request head too slowly is closed within headers_timeout", async () => {
    const g = await start(toml(up.port, ROUTES, 'headers_timeout = "1s"\nrequest_timeout = "2s"'));
    const sock = net.connect({ host: "127.0.0.1", port: g.ports.api!, localAddress: "127.0.0.9" });
    sock.write("GET /token HTTP/1.1\r\nHost: x\r\n");
    const reply = await new Promise<string>((resolve, reject) => {
      let got = "";
      const timer = setTimeout(() => reject(new Error("slow client not closed within 10 s")), 10_000);
      sock.on("data", (d: Buffer) => (got += d.toString("latin1")));
      sock.on("close", () => {
        clearTimeout(timer);
        resolve(got);
      });
      sock.on("error", () => undefined);
    });
    assert.match(reply, /^HTTP\/1\.1 408/);
  });
});

describe("configuration of http listeners", () => {
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, ...args], { cwd: root, timeout: 30_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: unknown }).code) : 0, stdout, stderr });
      });
    });

  test("check-config accepts the example with its http block uncommented and prints the listener and section", async () => {
    // The example ships the http listener commented out (so that `npm start` binds nothing more); the block must stay valid.
    const example = readFileSync(join(root, "examples/portcullis.toml"), "utf8");
    const at = example.indexOf("# --- http listener");
    assert.ok(at > 0, "the example has an http listener block");
    const uncommented = example.slice(0, at) + example.slice(at).replace(/^# (?=\[|[a-z_]+ = )/gm, "");
    const dir = mkdtempSync(join(tmpdir(), "portcullis-http-example-"));
    const file = join(dir, "example.toml");
    writeFileSync(file, uncommented);
    const r = await run(["check-config", "-c", file, "--json"]).finally(() => rmSync(dir, { recursive: true, force: true }));
    assert.equal(r.code, 0, r.stderr);
    const eff = JSON.parse(r.stdout) as { listener: Array<Record<string, unknown>>; http: Record<string, unknown> };
    const api = eff.listener.find((l) => l.kind === "http");
    assert.ok(api, "the example has an http listener");
    assert.match(String(api.upstream), /^http:\/\//);
    assert.equal(eff.http.headers, "draft");
    assert.deepEqual((eff.http.route as Array<{ match: string }>).map((x) => x.match), ["/token", "/login"]);
  });

  test("check-config rejects a bad route naming the key path, with exit code 2", async () => {
    const dir = mkdtempSync(join(tmpdir(), "portcullis-http-cfg-"));
    try {
      const file = join(dir, "bad.toml");
      writeFileSync(
        file,
        toml(
          9,
          `
[[http.route]]
match = "/ok"

[[http.route]]
match = "/token"
limit = { algorithm = "fixed_window", permit_limit = 0, window = "00:01:00", key = "cookie" }
`,
        ),
      );
      const r = await run(["check-config", "-c", file]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /^http\.route\[1\]\.limit\.permit_limit: expected a positive integer, got 0$/m);
      assert.match(r.stderr, /^http\.route\[1\]\.limit\.key: expected one of "ip", "ip_prefix", "client_id", "user", "route", "global", got "cookie"$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("validation names the key path of cross-field mistakes", () => {
    const bad = (http: string, extra = "") => {
      try {
        configFromToml(toml(9, http, extra));
        return [];
      } catch (e) {
        return (e as Error).message.replace(/^config refused: /, "").split("; ");
      }
    };
    assert.deepEqual(bad(`[[http.route]]\nmatch = "/t"\nlimit = { algorithm = "token_bucket", permit_limit = 3 }`), [
      'http.route[0].limit.permit_limit: not used for algorithm "token_bucket"',
      'http.route[0].limit.rate: required for algorithm "token_bucket"',
    ]);
    assert.deepEqual(bad(`[[http.route]]\nmatch = "token"`), ['http.route[0].match: expected a path pattern such as "/token", "/internal/*" or "*", got "token"']);
    assert.deepEqual(bad(`[http]\nprofile = { name = "lockdown", permit_limt = 2 }`), ["http.profile.permit_limt: unknown key"]);
    assert.deepEqual(bad(`[http]\nheaders = "ietf"`), ['http.headers: expected one of "draft", "legacy", "x", got "ietf"']);
    assert.deepEqual(bad("", 'headers_timeout = "20s"'), ["listener[0].headers_timeout: must not exceed request_timeout (the head is part of the request)"]);
    // A tcp listener takes host:port, not a URL, and none of the http fields.
    const tcp = `[[listener]]\nname = "t"\nkind = "tcp"\nbind = "127.0.0.1:0"\nupstream = "http://127.0.0.1:9"\nmax_body_size = "1MiB"\n`;
    assert.deepEqual(bad(tcp), ['listener[1].upstream: a URL is only for kind "http" (kind "tcp" takes "host:port")', 'listener[1].max_body_size: only for kind "http"']);
    // An http listener needs a URL.
    const hostPortOnly = `[[listener]]\nname = "h"\nkind = "http"\nbind = "127.0.0.1:0"\nupstream = "127.0.0.1:9"\n`;
    assert.deepEqual(bad(hostPortOnly), ['listener[1].upstream: required for kind "http" as a URL, e.g. "http://127.0.0.1:9000"']);
  });

  test("a configuration without http keeps loading and gets the defaults", () => {
    const c = configFromToml(`[[listener]]\nname = "e"\nkind = "connect"\nbind = "127.0.0.1:0"\n`);
    assert.deepEqual(c.http.route, []);
    assert.deepEqual(c.http.profile, { name: "default" });
    assert.equal(c.http.headers, "draft");
  });
});
