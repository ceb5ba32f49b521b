import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Client, connectDoc, connectHead, curl, type Origin, type Running, startGateway, startOrigin } from "./fixtures.js";

describe("connect listener with Proxy Basic auth", () => {
  let origin: Origin;
  let gw: Running;

  before(async () => {
    origin = await startOrigin();
    gw = await startGateway(await connectDoc({ guard: { max_auth_attempts: 2, ban: { failures: 50 } } }));
  });
  after(async () => {
    await gw.stop();
    await origin.close();
  });

  test("curl reaches a local HTTP server through the tunnel with the right password", async () => {
    const r = await curl(["-p", "-x", `http://alice:s3cret@127.0.0.1:${gw.port}`, `http://127.0.0.1:${origin.port}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "hello from origin");
    const accepted = gw.log.events("auth").filter((e) => e.result === "accept");
    assert.ok(accepted.some((e) => e.user === "alice"));
  });

  test("a wrong password gets 407 and no tunnel", async () => {
    const r = await curl(["-p", "-x", `http://alice:wrong@127.0.0.1:${gw.port}`, "-o", "/dev/null", "-w", "%{http_connect}", `http://127.0.0.1:${origin.port}/`]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, "407");
  });

  test("after max_auth_attempts failures on one connection, the connection is closed", async () => {
    const c = new Client(gw.port, "127.0.0.9");
    await c.connected();
    const bad = connectHead(`127.0.0.1:${origin.port}`, { user: "alice", password: "nope" });
    c.write(bad);
    await c.until(() => (c.text().match(/407/g) ?? []).length >= 1, 5000, "first 407");
    assert.equal(c.closed, false, "open after the first failure");
    c.write(bad);
    await c.waitClosed(5000);
    assert.equal((c.text().match(/HTTP\/1\.1 407/g) ?? []).length, 2);
    const rejects = gw.log.events("auth").filter((e) => e.remote_addr === "127.0.0.9" && e.result === "reject");
    assert.equal(rejects.length, 2);
    assert.equal(rejects[0]!.reason, "bad_credentials");
  });

  test("a request without credentials is asked for them and may then authenticate on the same connection", async () => {
    const c = new Client(gw.port, "127.0.0.10");
    await c.connected();
    c.write(connectHead(`127.0.0.1:${origin.port}`));
    await c.until(() => c.text().includes("\r\n\r\n"), 5000, "407");
    assert.match(c.text(), /^HTTP\/1\.1 407 .*\r\nProxy-Authenticate: Basic/s);
    c.write(connectHead(`127.0.0.1:${origin.port}`, { user: "alice", password: "s3cret" }));
    await c.until(() => c.text().includes("200 Connection established"), 5000, "200");
    c.write(`GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    await c.until(() => c.text().includes("hello from origin"), 5000, "origin answer");
    assert.ok(c.text().includes("hello from origin"));
    c.destroy();
  });
});

describe("destination policy", () => {
  let origin: Origin;
  let gw: Running;

  before(async () => {
    origin = await startOrigin();
    gw = await startGateway(
      await connectDoc({
        rules: [
          // alice may reach loopback, but only on the origin's port.
          { identities: ["alice"], hosts: ["*"], ports: [0], cidrs: ["127.0.0.0/8"] },
        ].map((r) => ({ ...r, ports: [origin.port] })),
      }),
    );
  });
  after(async () => {
    await gw.stop();
    await origin.close();
  });

  const via = (): string[] => ["-p", "-x", `http://alice:s3cret@127.0.0.1:${gw.port}`, "-o", "/dev/null", "-w", "%{http_connect}"];

  test("allowed: the rule's port on an explicitly allowed private range", async () => {
    const r = await curl([...via(), `http://127.0.0.1:${origin.port}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "200");
  });

  test("denied: a port no rule names gets 403", async () => {
    const r = await curl([...via(), `http://127.0.0.1:${origin.port === 65535 ? 65534 : origin.port + 1}/`]);
    assert.equal(r.stdout, "403");
  });
});

describe("private destinations are denied unless a rule names them", () => {
  test("a rule for any host without cidrs does not open loopback or private ranges", async () => {
    const origin = await startOrigin();
    const gw = await startGateway(await connectDoc({ rules: [{ identities: ["alice"], hosts: ["*"], ports: ["1-65535"] }] }));
    try {
      const decisions: Array<{ allowed: boolean }> = [];
      gw.gateway.events.on("decision", (d) => decisions.push(d));
      for (const target of [`127.0.0.1:${origin.port}`, "10.1.2.3:80", "169.254.169.254:80", "[::1]:80"]) {
        const c = new Client(gw.port);
        await c.connected();
        c.write(connectHead(target, { user: "alice", password: "s3cret" }));
        await c.until(() => c.text().includes("\r\n\r\n"), 5000, `answer for ${target}`);
        assert.match(c.text(), /^HTTP\/1\.1 403 /, target);
        c.destroy();
      }
      assert.equal(decisions.length, 4);
      assert.ok(decisions.every((d) => !d.allowed));
    } finally {
      await gw.stop();
      await origin.close();
    }
  });
});
