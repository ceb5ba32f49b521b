/**
 * Every refusal the gateway makes explains itself in its log, once, at info,
 * through the real `portcullis run`: a destination the policy refuses, a name
 * that does not resolve, a private address, an upstream that cannot be
 * reached (`event=deny reason=...`), never naming the destination unless
 * destination auditing is on; and a refusal whose client must wait longer
 * than log.long_retry_after (a ban) is flagged and counted.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GatewayProcess } from "../helpers/gateway-process.js";
import { Client, connectHead, startEcho, userHash, type Origin } from "./fixtures.js";
import { sleep } from "../helpers/wait.js";
import { freePort } from "../helpers/free-port.js";

const TOKEN = "refusal-test-token-0123456789";

/** Sends one CONNECT from `from` and returns the status line of the answer ("" when closed without one). */
async function connectOnce(port: number, target: string, auth: { user: string; password: string }, from = "127.0.0.1"): Promise<string> {
  const c = new Client(port, from);
  try {
    await c.connected();
    c.write(connectHead(target, auth));
    await c.until(() => c.text().includes("\r\n\r\n"), 10_000, `answer to CONNECT ${target}`);
    return c.text().split("\r\n")[0] ?? "";
  } finally {
    c.destroy();
  }
}

describe("refusals in the log, through portcullis run", () => {
  let dir: string;
  let echo: Origin;
  let closedPort: number;
  let gw: GatewayProcess;
  let port: number;
  let adminPort: number;
  const demo = { user: "demo", password: "demo-password" };

  const config = async (name: string, audit: boolean): Promise<string> => {
    const f = join(dir, name);
    await writeFile(
      f,
      [
        "[log]",
        'format = "logfmt"',
        `audit_destinations = ${audit}`,
        "[users]",
        `demo = "${await userHash(demo.password)}"`,
        "[guard]",
        'ban = { failures = 2, window = "60s", duration = "10m" }',
        "max_auth_attempts = 5",
        "[[policy.rule]]",
        'identities = ["demo"]',
        'hosts = ["*"]',
        "ports = [443]",
        "[[policy.rule]]",
        'identities = ["demo"]',
        'ports = ["1-65535"]',
        'cidrs = ["127.0.0.0/8"]',
        "[[listener]]",
        'name = "egress"',
        'kind = "connect"',
        'bind = "127.0.0.1:0"',
        'connect_timeout = "3s"',
        "[[listener]]",
        'name = "fwd"',
        'kind = "tcp"',
        'bind = "127.0.0.1:0"',
        `upstream = "127.0.0.1:${closedPort}"`,
        ...(audit ? [] : ["[admin]", "enabled = true", `bind = "127.0.0.1:${adminPort}"`, `token = "${TOKEN}"`]),
        "",
      ].join("\n"),
    );
    return f;
  };

  const start = async (file: string): Promise<{ gw: GatewayProcess; port: number }> => {
    const g = new GatewayProcess(file);
    await g.waitFor(() => /listener egress \(connect\) up on 127\.0\.0\.1:\d+/.test(g.stderr), "listener up");
    return { gw: g, port: Number(/up on 127\.0\.0\.1:(\d+)/.exec(g.stderr)![1]) };
  };

  const lines = (g: GatewayProcess, event: string): string[] => g.stdout.split("\n").filter((l) => l.includes(` event=${event} `));

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "portcullis-refusals-"));
    echo = await startEcho();
    closedPort = await freePort();
    adminPort = await freePort();
    ({ gw, port } = await start(await config("gateway.toml", false)));
  });
  after(async () => {
    gw.child.kill("SIGTERM");
    await gw.exit();
    await echo.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("each destination refusal is one info line with its reason, and no destination", async () => {
    const cases: Array<[string, string, RegExp]> = [
      ["8.8.8.8:80", "policy", /detail="no rule allows this destination"/],
      ["nonexistent.invalid:443", "dns", /detail="name resolution (failed|timed out)"|detail="name resolved to no addresses"/],
      ["10.1.2.3:443", "private_address", /detail="destination address is private/],
      [`127.0.0.1:${closedPort}`, "no_route", /detail=ECONNREFUSED/],
    ];
    for (const [target, reason, detail] of cases) {
      const before = lines(gw, "deny").length;
      const status = await connectOnce(port, target, demo);
      assert.equal(status, reason === "no_route" ? "HTTP/1.1 502 Bad Gateway" : "HTTP/1.1 403 Forbidden", target);
      await gw.waitFor(() => lines(gw, "deny").length > before, `deny line for ${target}`);
      const added = lines(gw, "deny").slice(before);
      assert.equal(added.length, 1, `one line per refusal:\n${added.join("\n")}`);
      const line = added[0]!;
      assert.match(line, new RegExp(`^ts=\\S+ level=info event=deny remote_addr=127\\.0\\.0\\.1 listener=egress reason=${reason} `));
      assert.match(line, detail);
      assert.match(line, / user=demo$/);
      const host = target.slice(0, target.lastIndexOf(":"));
      assert.ok(!line.includes(host) || host === "127.0.0.1", `the destination is not logged: ${line}`);
      assert.ok(!line.includes("destination="), line);
    }
    // A tunnel the policy allows is not a refusal.
    const ok = await connectOnce(port, `127.0.0.1:${echo.port}`, demo);
    assert.equal(ok, "HTTP/1.1 200 Connection established");
    await sleep(200);
    assert.equal(lines(gw, "deny").length, 4);
  });

  test("wrong passwords are reason=bad_credentials; the ban that follows is flagged as a long retry, on the line and in the metric", async () => {
    const from = "127.0.0.77";
    const wrong = { user: "demo", password: "wrong" };
    assert.match(await connectOnce(port, `127.0.0.1:${echo.port}`, wrong, from), /^HTTP\/1\.1 407/);
    // The second failure starts the ban, which closes the connection (ban_closes_connections) instead of a 407.
    await connectOnce(port, `127.0.0.1:${echo.port}`, wrong, from);
    await gw.waitFor(() => gw.stdout.includes(`event=ban remote_addr=${from}`), "ban");
    const rejects = gw.stdout.split("\n").filter((l) => l.includes(`event=auth result=reject remote_addr=${from}`));
    assert.equal(rejects.length, 2);
    for (const l of rejects) assert.match(l, / reason=bad_credentials user=demo$/);
    // The banned address comes back: refused at accept, with how long it must wait, flagged.
    const c = new Client(port, from);
    await c.waitClosed(10_000);
    await gw.waitFor(() => gw.stdout.includes(`event=limited remote_addr=${from}`), "limited line");
    const limited = gw.stdout.split("\n").filter((l) => l.includes(`event=limited remote_addr=${from}`));
    assert.equal(limited.length, 1);
    assert.match(limited[0]!, /^ts=\S+ level=info event=limited remote_addr=127\.0\.0\.77 listener=egress limiter=ban reason=banned retry_after_s=(59\d|600) long_retry_after=true$/);
    const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    assert.match(text, /^portcullis_long_retry_after_total\{limiter="ban"\} 1$/m);
    assert.match(text, /^portcullis_long_retry_after_total\{limiter="connection_rate"\} 0$/m, "preset to 0 for increase()-based alerts");
  });

  test("a tcp listener whose upstream refuses logs deny reason=no_route once", async () => {
    const fwd = Number(/listener fwd \(tcp\) up on 127\.0\.0\.1:(\d+)/.exec(gw.stderr)![1]);
    const c = new Client(fwd);
    await c.waitClosed(10_000);
    await gw.waitFor(() => gw.stdout.includes("listener=fwd reason=no_route"), "no_route line");
    const l = gw.stdout.split("\n").filter((x) => x.includes("event=deny") && x.includes("listener=fwd"));
    assert.equal(l.length, 1);
    assert.match(l[0]!, /^ts=\S+ level=info event=deny remote_addr=127\.0\.0\.1 listener=fwd reason=no_route detail=ECONNREFUSED$/);
  });

  test("with audit_destinations = true the deny line carries the destination", async () => {
    const audited = await start(await config("audit.toml", true));
    try {
      await connectOnce(audited.port, "8.8.8.8:80", demo);
      await audited.gw.waitFor(() => lines(audited.gw, "deny").length === 1, "deny line");
      assert.match(lines(audited.gw, "deny")[0]!, / reason=policy detail="no rule allows this destination" destination=8\.8\.8\.8:80 user=demo$/);
    } finally {
      audited.gw.child.kill("SIGTERM");
      await audited.gw.exit();
    }
  });
});
