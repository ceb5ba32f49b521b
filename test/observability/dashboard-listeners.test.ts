/**
 * The dashboard of a real `portcullis run` with a connect, an http and a udp
 * listener and a bandwidth cap, in headless Chromium: before its first poll
 * the page says it is loading (not "Nobody misbehaved."); after real
 * traffic every panel shows it: the listener table, HTTP 429s by route (and
 * the refused client in the offender table), UDP packets and drops by
 * reason, shaped bytes and throttled time, ban reasons, version, uptime,
 * store mode and the last reload. A limiter keeps its colour from chart to
 * chart. /v1/stats is checked directly as well. A screenshot is written to
 * a temporary folder (its path is printed) and to test-output/observability/.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import dgram from "node:dgram";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { GatewayProcess } from "../helpers/gateway-process.js";
import { Client, connectHead, userHash, withTimeout } from "../gateway/fixtures.js";
import { waitUntil, sleep } from "../helpers/wait.js";
import { freePort } from "../helpers/free-port.js";

const TOKEN = "dashboard-listeners-token-0123456789";
const OUT = join("test-output", "observability");
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const VERSION = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
/** What the bulk origin sends on each connection: several seconds' worth at the per-IP download cap below. */
const BULK_BYTES = 64 * 1024;

/** Polls `expression` in the page (through DevTools, outside the page's CSP) until it is truthy. */
async function truthyInPage(page: Page, expression: string, timeoutMs: number): Promise<void> {
  await waitUntil(() => page.evaluate(expression), { timeoutMs, intervalMs: 50, message: expression });
}

const text = (page: Page, selector: string): Promise<string> => page.textContent(selector).then((t) => (t ?? "").trim());

interface Servers {
  http: http.Server;
  bulk: net.Server;
  udp: dgram.Socket;
  ports: { http: number; bulk: number; udp: number };
}

/** An HTTP upstream, a TCP origin that sends BULK_BYTES, and a UDP echo server, all on 127.0.0.1. */
async function startServers(): Promise<Servers> {
  const h = http.createServer((req, res) => res.end(`upstream saw ${req.url}`));
  await new Promise<void>((r) => h.listen(0, "127.0.0.1", r));
  const bulk = net.createServer((s) => {
    s.on("error", () => {});
    s.end(Buffer.alloc(BULK_BYTES, 0x61));
  });
  await new Promise<void>((r) => bulk.listen(0, "127.0.0.1", r));
  const udp = dgram.createSocket("udp4");
  udp.on("message", (m, from) => udp.send(m, from.port, from.address));
  await new Promise<void>((r) => udp.bind(0, "127.0.0.1", r));
  return { http: h, bulk, udp, ports: { http: (h.address() as net.AddressInfo).port, bulk: (bulk.address() as net.AddressInfo).port, udp: udp.address().port } };
}

describe("dashboard of every listener kind, through portcullis run", () => {
  let dir: string;
  let servers: Servers;
  let gw: GatewayProcess;
  let admin: string;
  let ports: Record<string, number>;
  let ctx: BrowserContext;
  let profile: string;
  const alice = { user: "alice", password: "alice-password" };

  const api = async (path: string, method = "GET"): Promise<Record<string, unknown>> => {
    const r = await fetch(`${admin}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 200, `${method} ${path}`);
    return (await r.json()) as Record<string, unknown>;
  };

  before(async () => {
    mkdirSync(OUT, { recursive: true });
    dir = mkdtempSync(join(tmpdir(), "portcullis-dashboard-"));
    servers = await startServers();
    const adminPort = await freePort();
    const file = join(dir, "portcullis.toml");
    writeFileSync(
      file,
      [
        "[log]",
        'format = "logfmt"',
        "[users]",
        `alice = "${await userHash(alice.password)}"`,
        "[guard]",
        'ban = { failures = 2, window = "60s", duration = "10m" }',
        "[[policy.rule]]",
        'identities = ["alice"]',
        'ports = ["1-65535"]',
        'cidrs = ["127.0.0.0/8"]',
        "[bandwidth]",
        'per_ip = { download = { bytes_per_second = "32KiB", burst = "16KiB" } }',
        "[[listener]]",
        'name = "egress"',
        'kind = "connect"',
        'bind = "127.0.0.1:0"',
        "[[listener]]",
        'name = "api"',
        'kind = "http"',
        'bind = "127.0.0.1:0"',
        `upstream = "http://127.0.0.1:${servers.ports.http}"`,
        "[[listener]]",
        'name = "dns"',
        'kind = "udp"',
        'bind = "127.0.0.1:0"',
        `upstream = "127.0.0.1:${servers.ports.udp}"`,
        "packets_per_second = 5",
        "[http]",
        "[[http.route]]",
        'name = "token"',
        'match = "/token"',
        'limit = { algorithm = "fixed_window", permit_limit = 2, window = "00:01:00", queue_limit = 0, key = "ip" }',
        "[admin]",
        "enabled = true",
        `bind = "127.0.0.1:${adminPort}"`,
        `token = "${TOKEN}"`,
        "",
      ].join("\n"),
    );
    gw = new GatewayProcess(file);
    await gw.waitFor(() => gw.stderr.includes("admin listener up on"), "admin listener up");
    ports = {};
    for (const m of gw.stderr.matchAll(/listener (\w+) \((\w+)[^)]*\) up on 127\.0\.0\.1:(\d+)/g)) ports[m[1]!] = Number(m[3]);
    assert.deepEqual(Object.keys(ports).sort(), ["api", "dns", "egress"], gw.stderr);
    admin = `http://127.0.0.1:${adminPort}`;
    profile = mkdtempSync(join(tmpdir(), "portcullis-chromium-"));
    ctx = await chromium.launchPersistentContext(profile, { executablePath: "/usr/bin/chromium", headless: true, args: ARGS, viewport: { width: 1280, height: 1000 }, timeout: 30_000 });
  });

  after(async () => {
    await ctx?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    if (gw) {
      gw.child.kill("SIGTERM");
      await gw.exit();
    }
    servers?.http.closeAllConnections();
    await new Promise<void>((r) => (servers ? servers.http.close(() => r()) : r()));
    await new Promise<void>((r) => (servers ? servers.bulk.close(() => r()) : r()));
    servers?.udp.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A tunnel from `from` to the bulk origin, read to the end (the per-IP download cap makes it take seconds). */
  async function download(from: string): Promise<number> {
    const c = new Client(ports.egress!, from);
    await c.connected();
    c.write(connectHead(`127.0.0.1:${servers.ports.bulk}`, alice));
    await c.until(() => c.text().includes("\r\n\r\n"), 5000, "CONNECT answer");
    const head = c.text().indexOf("\r\n\r\n") + 4;
    await c.until(() => c.received.length - head >= BULK_BYTES, 20_000, "bulk download");
    c.destroy();
    return c.received.length - head;
  }

  /** Two wrong passwords on the connect listener: the address is banned for auth failures. */
  async function getBanned(from: string): Promise<void> {
    const c = new Client(ports.egress!, from);
    await c.connected();
    const bad = connectHead(`127.0.0.1:${servers.ports.bulk}`, { user: "alice", password: "wrong" });
    c.write(bad);
    await c.until(() => c.text().includes("407"), 5000, "407");
    c.write(bad);
    await c.waitClosed();
  }

  /** GETs `path` on the http listener from `from`; the status. */
  function get(from: string, path: string): Promise<number> {
    return withTimeout(
      new Promise<number>((resolve, reject) => {
        const req = http.get({ host: "127.0.0.1", port: ports.api, path, localAddress: from, agent: false }, (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        });
        req.on("error", reject);
      }),
      5000,
      `GET ${path}`,
    );
  }

  /** Sends `n` datagrams from one client socket and counts the echoes that come back within a short wait. */
  async function udpBurst(n: number): Promise<number> {
    const s = dgram.createSocket("udp4");
    let echoes = 0;
    s.on("message", () => echoes++);
    await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
    for (let i = 0; i < n; i++) s.send(`ping ${i}`, ports.dns!, "127.0.0.1");
    await sleep(300);
    s.close();
    return echoes;
  }

  test("loading state first, then every panel shows the traffic", async () => {
    const page = await ctx.newPage();
    const problems: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(m.text());
    });
    page.on("pageerror", (e) => problems.push(e.message));

    // Hold the first /v1/stats answer: until it arrives the page must say it is loading, not that nothing happened.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let first = true;
    await page.route("**/v1/stats", async (route) => {
      if (first) {
        first = false;
        await held;
      }
      await route.continue();
    });
    await page.goto(`${admin}/?interval=250#token=${TOKEN}`, { timeout: 15_000 });
    await page.waitForSelector("#board:not([hidden])", { timeout: 5000 });
    assert.equal(await page.isVisible("#loading"), true, "the loading note shows before the first poll");
    assert.equal(await page.isVisible("#offenders-empty"), false, "no 'Nobody misbehaved.' before data");
    assert.equal(await page.isVisible("#bans-empty"), false, "no 'No bans.' before data");
    assert.equal(await page.isVisible("#http-routes-empty"), false);
    assert.match(await text(page, "#offenders + .placeholder"), /Loading/);
    assert.equal(await text(page, "#fact-version"), "–");
    await page.screenshot({ path: join(OUT, "dashboard-loading.png"), fullPage: true });
    release();
    await truthyInPage(page, `document.getElementById("board").dataset.loaded === "true"`, 10_000);
    assert.equal(await page.isVisible("#loading"), false);
    assert.equal(await page.isVisible("#offenders + .placeholder"), false);
    await page.unroute("**/v1/stats");

    // Traffic of every kind while the page polls.
    const downloading = download("127.0.0.91");
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push(await get("127.0.0.81", "/token"));
    assert.deepEqual(statuses, [200, 200, 429, 429, 429], "the route allows 2 a minute per address");
    await getBanned("127.0.0.70");
    const echoes = await udpBurst(40);
    assert.ok(echoes >= 1 && echoes < 40, `5 per second per flow: most of a burst of 40 is dropped, got ${echoes} echoes`);
    const more = await udpBurst(40);
    assert.ok(more < 40);
    const fetched = await downloading;
    assert.equal(fetched, BULK_BYTES);
    const reload = await api("/v1/reload", "POST");
    assert.equal(reload.ok, true);

    // /v1/stats carries each listener kind.
    const stats = await api("/v1/stats");
    const listeners = stats.listeners as Array<Record<string, unknown>>;
    assert.deepEqual(
      listeners.map((l) => [l.name, l.kind, l.state]),
      [
        ["egress", "connect", "listening"],
        ["api", "http", "listening"],
        ["dns", "udp", "listening"],
      ],
    );
    assert.equal(listeners[1]!.bind, `127.0.0.1:${ports.api}`);
    const httpStats = stats.http as { rejections: number; by_listener: Record<string, number>; by_route: Array<{ route: string; limiter: string; count: number }> };
    assert.equal(httpStats.rejections, 3);
    assert.equal(httpStats.by_listener.api, 3);
    assert.deepEqual(httpStats.by_route, [{ route: "token", limiter: "token", count: 3 }]);
    const udp = (stats.udp as Array<{ listener: string; packets: { in: number; out: number }; dropped: { rate_cap: number; flow_cap: number } }>)[0]!;
    assert.equal(udp.listener, "dns");
    assert.ok(udp.dropped.rate_cap >= 40, `80 sent at 5/s: most dropped for the rate, got ${udp.dropped.rate_cap}`);
    assert.ok(udp.packets.in + udp.dropped.rate_cap >= 80, "each datagram sent is relayed or dropped");
    assert.ok(udp.packets.out >= 2, "echoes relayed back");
    assert.equal(udp.dropped.flow_cap, 0);
    const bw = stats.bandwidth as {
      enabled: boolean;
      throttled_seconds: { in: number; out: number };
      shaped_bytes: { in: number; out: number };
      top_throttled: Array<{ kind: string; key: string; seconds: { in: number; out: number } }>;
    };
    assert.equal(bw.enabled, true);
    assert.ok(bw.shaped_bytes.out >= BULK_BYTES, `shaped download counted: ${bw.shaped_bytes.out}`);
    assert.ok(bw.throttled_seconds.out > 0.5, `64 KiB at 32 KiB/s after a 16 KiB burst waits over a second: ${bw.throttled_seconds.out}`);
    const live = stats.liveBytes as { in: number; out: number };
    assert.ok(live.out >= BULK_BYTES + udp.packets.out * 6, `live bytes: the shaped download and the udp echoes, got ${live.out}`);
    assert.ok(live.in >= udp.packets.in * 6, `live bytes in: the udp datagrams, got ${live.in}`);
    assert.equal(bw.top_throttled.length, 1, JSON.stringify(bw.top_throttled));
    assert.deepEqual([bw.top_throttled[0]!.kind, bw.top_throttled[0]!.key, bw.top_throttled[0]!.seconds.in], ["ip", "127.0.0.91", 0]);
    assert.ok(bw.top_throttled[0]!.seconds.out > 0.5, `the downloading address was held back: ${JSON.stringify(bw.top_throttled)}`);
    const g = stats.gateway as { version: string; store: string; uptime_s: number; reload: { ok: boolean } | null };
    assert.equal(g.version, VERSION);
    assert.equal(g.store, "memory");
    assert.equal(g.reload?.ok, true);
    assert.deepEqual(stats.bans_by_reason, { auth_failures: 1, manual: 0 });
    const offenders = stats.top_offenders as Array<{ key: string; count: number; kinds: string[] }>;
    const httpOffender = offenders.find((o) => o.key === "127.0.0.81");
    assert.ok(httpOffender, `the address the http listener refused is an offender: ${JSON.stringify(offenders)}`);
    assert.deepEqual(httpOffender, { ...httpOffender, count: 3, kinds: ["http"] });
    const ready = (await (await fetch(`${admin}/readyz`, { signal: AbortSignal.timeout(5000) })).json()) as { checks: Array<{ name: string; detail?: string }> };
    assert.equal(ready.checks.find((c) => c.name === "store")?.detail, g.store, "the store mode is the one /readyz reports");

    // The page shows all of it.
    await truthyInPage(page, `document.querySelectorAll("#listeners tbody tr").length === 3`, 10_000);
    assert.equal(await text(page, '#listeners tr[data-key="api"] td:nth-child(2)'), "http");
    assert.equal(await text(page, '#listeners tr[data-key="dns"] td:nth-child(4)'), "listening");
    assert.equal(await text(page, '#listeners tr[data-key="egress"] td:nth-child(3)'), `127.0.0.1:${ports.egress}`);
    await page.waitForSelector('#http-routes tr[data-key="token/token"]', { timeout: 10_000 });
    assert.equal(await text(page, '#http-routes tr[data-key="token/token"] td:nth-child(3)'), "3");
    await truthyInPage(page, `(document.getElementById("chart-http-429")?.dataset.series ?? "") === "token / token"`, 10_000);
    await page.waitForSelector('#offenders tr[data-key="127.0.0.81"]', { timeout: 10_000 });
    assert.equal(await text(page, '#offenders tr[data-key="127.0.0.81"] td:nth-child(3)'), "http");
    assert.ok(Number(await text(page, '#udp tr[data-key="dns"] td:nth-child(5)')) >= 40, "rate-cap drops in the udp table");
    assert.equal(await page.getAttribute("#chart-udp-drops", "data-series"), "rate_cap,flow_cap");
    assert.equal(await page.getAttribute("#chart-udp-packets", "data-series"), "dns in,dns out");
    assert.equal(await page.getAttribute("#chart-bw-throttle", "data-series"), "in,out");
    assert.equal(await page.getAttribute("#chart-bw-bytes", "data-series"), "in,out");
    assert.equal(await page.getAttribute("#chart-bytes", "data-series"), "tcp in,tcp out,udp in,udp out");
    assert.equal(await page.getAttribute("#chart-connections", "data-series"), "egress,api,dns");
    assert.equal(await page.getAttribute("#chart-http-conns", "data-series"), "api");
    assert.equal(await page.isVisible("#http-body"), true);
    assert.equal(await page.isVisible("#udp-body"), true);
    assert.equal(await page.isVisible("#bw-body"), true);
    await page.waitForSelector('#throttled tr[data-key="ip:127.0.0.91"]', { timeout: 10_000 });
    assert.ok(Number(await text(page, '#throttled tr[data-key="ip:127.0.0.91"] td:nth-child(4)')) > 0.5, "the throttled address in the bandwidth table");
    await page.waitForSelector('#bans tr[data-key="127.0.0.70"]', { timeout: 10_000 });
    assert.equal(await text(page, '#bans tr[data-key="127.0.0.70"] td:nth-child(2)'), "auth_failures");
    assert.match(await text(page, "#ban-reasons"), /auth failures 1/);
    assert.equal(await text(page, "#fact-version"), VERSION);
    assert.equal(await text(page, "#fact-store"), "memory");
    assert.match(await text(page, "#fact-uptime"), /^\d+ (s|min)/);
    await truthyInPage(page, `/^applied at /.test(document.getElementById("fact-reload").textContent)`, 10_000);

    // A limiter has one colour in every chart it appears in.
    const colours = async (id: string): Promise<Map<string, string>> =>
      new Map(((await page.getAttribute(`#${id}`, "data-colors")) ?? "").split(",").map((p) => p.split("=") as [string, string]));
    const decided = await colours("chart-decisions");
    await truthyInPage(page, `(document.getElementById("chart-rejections")?.dataset.series ?? "").split(",").includes("auth")`, 10_000);
    const rejected = await colours("chart-rejections");
    for (const limiter of ["auth", "ban"]) {
      if (!rejected.has(limiter)) continue;
      assert.equal(rejected.get(limiter), decided.get(limiter), `${limiter} has the same colour in both charts`);
    }
    assert.ok(rejected.has("auth"));
    const all = [...decided.values()];
    assert.equal(new Set(all).size, all.length, `each limiter of a chart has its own colour: ${[...decided].join(" ")}`);

    const shot = join(mkdtempSync(join(tmpdir(), "portcullis-dashboard-shot-")), "dashboard-listeners.png");
    await page.screenshot({ path: shot, fullPage: true });
    copyFileSync(shot, join(OUT, "dashboard-listeners.png"));
    console.log(`dashboard screenshot: ${shot}`);
    assert.deepEqual(problems, [], "no console errors");
    await page.close();
  });
});
