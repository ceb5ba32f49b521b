/**
 * The dashboard in a real headless Chromium against a running gateway with
 * traffic: the charts draw, the ban table lists a ban, the unban button
 * lifts it (the address connects again), and the page asks nothing of any
 * host but the admin listener. Screenshots go to test-output/observability/.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { Client, connectDoc, connectHead, type Origin, probe, startOrigin } from "../gateway/fixtures.js";
import { TOKEN, type Observed, startObserved } from "./fixtures.js";
import { waitUntil } from "../helpers/wait.js";

const OUT = join("test-output", "observability");

/**
 * Polls `expression` in the page until it is truthy. page.waitForFunction
 * would evaluate the predicate with eval inside the page, which the
 * dashboard's Content-Security-Policy (rightly) forbids; page.evaluate runs
 * through the DevTools protocol, outside the page's CSP.
 */
async function truthyInPage(page: Page, expression: string, timeoutMs: number): Promise<void> {
  await waitUntil(() => page.evaluate(expression), { timeoutMs, intervalMs: 50, message: expression });
}
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

async function tunnel(o: Observed, origin: Origin, from: string): Promise<void> {
  const c = new Client(o.port, from);
  await c.connected();
  c.write(connectHead(`127.0.0.1:${origin.port}`, { user: "alice", password: "s3cret" }));
  await c.until(() => c.text().includes("\r\n\r\n"), 5000, "CONNECT answer");
  c.write("GET / HTTP/1.1\r\nHost: origin\r\n\r\n");
  await c.until(() => c.text().includes("hello from origin"), 5000, "origin answer");
  c.destroy();
}

/** Two wrong passwords: with failures = 2 the address is banned. */
async function getBanned(o: Observed, from: string): Promise<void> {
  const c = new Client(o.port, from);
  await c.connected();
  const bad = connectHead("127.0.0.1:1", { user: "alice", password: "wrong" });
  c.write(bad);
  await c.until(() => c.text().includes("407"), 5000, "407");
  c.write(bad);
  await c.waitClosed();
}

describe("dashboard", () => {
  let origin: Origin;
  let o: Observed;
  let ctx: BrowserContext;
  let profile: string;
  before(async () => {
    mkdirSync(OUT, { recursive: true });
    origin = await startOrigin();
    o = await startObserved(await connectDoc({ guard: { ban: { failures: 2 } } }));
    profile = mkdtempSync(join(tmpdir(), "portcullis-chromium-"));
    ctx = await chromium.launchPersistentContext(profile, { executablePath: "/usr/bin/chromium", headless: true, args: ARGS, viewport: { width: 1280, height: 1000 }, timeout: 30_000 });
  });
  after(async () => {
    await ctx?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    await o?.stop();
    await origin?.close();
  });

  test("charts render, the ban table lists a ban, unban lifts it; only the admin listener is contacted", async () => {
    const page = await ctx.newPage();
    const requests: string[] = [];
    const problems: string[] = [];
    page.on("request", (r) => requests.push(r.url()));
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(m.text());
    });
    page.on("pageerror", (e) => problems.push(e.message));

    await tunnel(o, origin, "127.0.0.71");
    await getBanned(o, "127.0.0.70");
    await page.goto(`${o.obs.url}/?interval=250#token=${TOKEN}`, { timeout: 15_000 });
    // The token left the address bar as soon as the page read it.
    assert.equal(new URL(page.url()).hash, "");

    // Traffic while the page polls, so the rates have something to show.
    for (let i = 0; i < 4; i++) {
      await tunnel(o, origin, `127.0.0.${72 + i}`);
      const refused = await probe(o.port, "127.0.0.70");
      refused.client.destroy();
      assert.equal(refused.served, false);
      await page.waitForTimeout(150);
    }

    for (const id of ["chart-decisions", "chart-rejections", "chart-connections", "chart-bytes"]) {
      await truthyInPage(page, `Number(document.getElementById(${JSON.stringify(id)})?.dataset.points ?? 0) >= 3`, 10_000);
      const canvas = await page.$(`#${id} canvas`);
      assert.ok(canvas, `${id} draws on a canvas`);
      const box = await canvas.boundingBox();
      assert.ok(box && box.width > 200 && box.height > 100, `${id} has a size`);
    }
    await truthyInPage(page, `(document.getElementById("chart-rejections")?.dataset.series ?? "").split(",").includes("ban")`, 10_000);
    const decisionSeries = (await page.getAttribute("#chart-decisions", "data-series")) ?? "";
    for (const limiter of ["ban", "auth", "destination_policy"]) assert.ok(decisionSeries.split(",").includes(limiter), `decisions chart has ${limiter}: ${decisionSeries}`);
    await page.waitForSelector('#offenders tr[data-key="127.0.0.70"]', { timeout: 10_000 });
    const offences = Number(await page.textContent('#offenders tr[data-key="127.0.0.70"] td:nth-child(2)'));
    assert.ok(offences >= 6, `2 rejected logins + 4 refusals, got ${offences}`);

    const row = await page.waitForSelector('#bans tr[data-key="127.0.0.70"]', { timeout: 10_000 });
    assert.match((await row.textContent()) ?? "", /127\.0\.0\.70/);
    assert.equal(await page.textContent("#tile-bans"), "1");
    // A connect-only gateway: the kinds it does not have say so in one line instead of empty charts.
    for (const kind of ["http", "udp", "bw"]) {
      assert.equal(await page.isVisible(`#${kind}-none`), true, `${kind}: one line saying there is none`);
      assert.equal(await page.isVisible(`#${kind}-body`), false, `${kind}: no empty charts`);
    }
    assert.equal(await page.textContent('#listeners tr[data-key="egress"] td:nth-child(4)'), "listening");
    await page.screenshot({ path: join(OUT, "dashboard.png"), fullPage: true });

    await page.click('#bans tr[data-key="127.0.0.70"] button.unban');
    await page.waitForSelector('#bans tr[data-key="127.0.0.70"]', { state: "detached", timeout: 10_000 });
    assert.equal(await page.isVisible("#bans-empty"), true);
    const served = await probe(o.port, "127.0.0.70");
    served.client.destroy();
    assert.equal(served.served, true, "unbanned from the page, the address connects again");
    await page.screenshot({ path: join(OUT, "dashboard-after-unban.png"), fullPage: true });

    const admin = new URL(o.obs.url).origin;
    const foreign = requests.filter((u) => !u.startsWith("data:") && new URL(u).origin !== admin);
    assert.deepEqual(foreign, [], "no request to any other host");
    assert.ok(requests.some((u) => u.endsWith("/assets/uPlot.iife.min.js")));
    assert.ok(requests.some((u) => u.includes("/v1/stats")));
    assert.deepEqual(problems, [], "no console errors (a content-policy violation would show here)");
    await page.close();
  });

  test("without a token the page asks for one, and a wrong one is refused", async () => {
    const page = await ctx.newPage();
    await page.goto(`${o.obs.url}/`, { timeout: 15_000 });
    await page.waitForSelector("#login:not([hidden])", { timeout: 5000 });
    await page.fill("#token", "not-the-token-at-all");
    await page.click("#login button");
    await truthyInPage(page, `document.getElementById("status")?.textContent === "That token was refused."`, 5000);
    assert.equal(await page.isHidden("#board"), true);
    await page.close();
  });
});
