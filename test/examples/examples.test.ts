/**
 * One example configuration per kind of user (examples/*.toml, *.yaml), as
 * docs/recipes.md walks through them: each passes `check-config`, and each
 * starts under the real `portcullis run` and serves one real client. Each
 * file is copied to a temporary folder as written (relative paths resolve
 * from there; the egress example's certificates come from its own
 * make-certs.sh); only fixed ports are moved, by PORTCULLIS__ overrides, to
 * free ones and to the local servers the test starts.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI } from "../helpers/cli.js";
import { GatewayProcess } from "../helpers/gateway-process.js";
import { Client, curl, startEcho, startOrigin, type Origin } from "../gateway/fixtures.js";

const root = new URL("../..", import.meta.url).pathname;
const TOKEN = "examples-admin-token-0123456789";
const EXAMPLES = ["egress-mtls.toml", "tunnel-server.toml", "relay-masking.toml", "auth-server.yaml", "proxy.toml"];

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

describe("examples: one configuration per user, checked and started", () => {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-examples-"));
  let origin: Origin;
  let echo: Origin;
  const running: GatewayProcess[] = [];

  before(async () => {
    for (const f of EXAMPLES) copyFileSync(join(root, "examples", f), join(dir, f));
    // The egress example's certificates, made by its script where the copied file looks for them.
    const made = await run("sh", [join(root, "examples/egress-mtls/make-certs.sh"), join(dir, "egress-mtls/certs"), "agent-1"]);
    assert.equal(made.code, 0, made.stderr);
    origin = await startOrigin();
    echo = await startEcho();
  });
  after(async () => {
    for (const g of running) {
      g.child.kill("SIGTERM");
      await g.exit().catch(() => {});
    }
    await origin.close();
    await echo.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Starts an example with `env` overrides; resolves with each listener's port by name. */
  async function start(file: string, env: Record<string, string>): Promise<Record<string, number>> {
    const g = new GatewayProcess(join(dir, file), { PORTCULLIS_ADMIN_TOKEN: TOKEN, ...env });
    running.push(g);
    const names = [...readFileSync(join(dir, file), "utf8").matchAll(/^\s*(?:-\s*)?name\s*[=:]\s*"?([\w.-]+)"?/gm)].map((m) => m[1]!);
    await g.waitFor(() => names.every((n) => new RegExp(`listener ${n} \\(`).test(g.stderr)) || g.child.exitCode !== null, `${file}: listeners up`, 30_000);
    assert.equal(g.child.exitCode, null, `${file} did not start:\n${g.stderr}`);
    return Object.fromEntries(names.map((n) => [n, Number(new RegExp(`listener ${n} \\([^)]*\\) up on [^\\n]*:(\\d+)`).exec(g.stderr)![1])]));
  }

  test("check-config accepts each example as written", async () => {
    for (const f of EXAMPLES) {
      const r = await run(process.execPath, [CLI, "check-config", "-c", join(dir, f)], { PORTCULLIS_ADMIN_TOKEN: TOKEN });
      assert.equal(r.code, 0, `${f}:\n${r.stderr}`);
    }
  });

  test("egress-mtls: an agent with its client certificate tunnels to the enclave service; without one it is refused", async () => {
    const p = await start("egress-mtls.toml", { PORTCULLIS__LISTENER__0__BIND: "127.0.0.1:0", PORTCULLIS__POLICY__RULE__1__PORTS__0: String(origin.port) });
    const certs = join(dir, "egress-mtls/certs");
    const proxy = ["-p", "--proxy", `https://127.0.0.1:${p.egress}`, "--proxy-cacert", join(certs, "ca.crt")];
    const ok = await curl([...proxy, "--proxy-cert", join(certs, "agent-1.crt"), "--proxy-key", join(certs, "agent-1.key"), `http://127.0.0.1:${origin.port}/`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, "hello from origin");
    const anonymous = await curl([...proxy, `http://127.0.0.1:${origin.port}/`]);
    assert.notEqual(anonymous.code, 0, "no client certificate, no tunnel");
  });

  test("tunnel-server: bytes go through to the daemon and back", async () => {
    const p = await start("tunnel-server.toml", { PORTCULLIS__LISTENER__0__BIND: "127.0.0.1:0", PORTCULLIS__LISTENER__0__UPSTREAM: `127.0.0.1:${echo.port}`, PORTCULLIS__ADMIN__BIND: "127.0.0.1:0" });
    const c = new Client(p.ssh!);
    try {
      await c.connected();
      c.write("SSH-2.0-OpenSSH_9.2\r\n");
      await c.until(() => c.text().includes("SSH-2.0-OpenSSH_9.2"), 5000, "echo through the tunnel");
    } finally {
      c.destroy();
    }
  });

  test("relay-masking: a prober sees the mask site; a user tunnels", async () => {
    const p = await start("relay-masking.toml", {
      PORTCULLIS__LISTENER__0__BIND: "127.0.0.1:0",
      PORTCULLIS__LISTENER__0__PROBE_RESISTANCE__MASK: `127.0.0.1:${origin.port}`,
      // The local origin stands in for a public site: the user's rule reaches it by port and cidrs.
      PORTCULLIS__POLICY__RULE__0__PORTS__0: String(origin.port),
      PORTCULLIS__POLICY__RULE__0__CIDRS__0: "127.0.0.1/32",
    });
    const probe = await curl([`http://127.0.0.1:${p.relay}/`]);
    assert.equal(probe.stdout, "hello from origin", `a plain GET is answered by the mask site: ${probe.stderr}`);
    const user = await curl(["-p", "-x", `http://alice:demo-password@127.0.0.1:${p.relay}`, `http://127.0.0.1:${origin.port}/`]);
    assert.equal(user.code, 0, user.stderr);
    assert.equal(user.stdout, "hello from origin");
  });

  test("auth-server: a token request is proxied with RateLimit headers", async () => {
    const p = await start("auth-server.yaml", { PORTCULLIS__LISTENER__0__BIND: "127.0.0.1:0", PORTCULLIS__LISTENER__0__UPSTREAM: `http://127.0.0.1:${origin.port}`, PORTCULLIS__ADMIN__BIND: "127.0.0.1:0" });
    const r = await curl(["-i", "-d", "grant_type=client_credentials", `http://127.0.0.1:${p.api}/token`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^HTTP\/1\.1 200/);
    assert.match(r.stdout, /^ratelimit(-policy)?:/im);
    assert.match(r.stdout, /hello from origin$/);
  });

  test("proxy: CONNECT, TCP and UDP listeners and the admin listener start; a user tunnels and the forward relays", async () => {
    const p = await start("proxy.toml", {
      PORTCULLIS__LISTENER__0__BIND: "127.0.0.1:0",
      PORTCULLIS__LISTENER__1__BIND: "127.0.0.1:0",
      PORTCULLIS__LISTENER__1__UPSTREAM: `127.0.0.1:${echo.port}`,
      PORTCULLIS__LISTENER__2__BIND: "127.0.0.1:0",
      PORTCULLIS__POLICY__RULE__1__PORTS__0: String(origin.port),
      PORTCULLIS__ADMIN__BIND: "127.0.0.1:0",
    });
    const r = await curl(["-p", "-x", `http://demo:demo-password@127.0.0.1:${p.connect}`, `http://127.0.0.1:${origin.port}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "hello from origin");
    const c = new Client(p.forward!);
    try {
      await c.connected();
      c.write("ping");
      await c.until(() => c.text() === "ping", 5000, "forward echo");
    } finally {
      c.destroy();
    }
  });
});
