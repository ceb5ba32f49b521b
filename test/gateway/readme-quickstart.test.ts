/**
 * The README's quick start, as written: its shell block is read from
 * README.md, and each line runs against the gateway `npm start` runs
 * (examples/portcullis.toml through the real `portcullis run`). Only the two
 * fixed ports are moved to free ones (8080 -> the gateway's, 9000 -> the
 * local web server's, with the example's rule for 9000 following it), so the
 * test does not depend on those ports being free on this machine. Each curl
 * line's comment says what it shows: the body, or the status and the log
 * line's fields, and both are checked.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import { GatewayProcess } from "../helpers/gateway-process.js";
import { withTimeout } from "./fixtures.js";
import { sleep } from "../helpers/wait.js";
import { freePort } from "../helpers/free-port.js";

const root = new URL("../..", import.meta.url).pathname;

/** The README's shell block that goes through the proxy. */
function quickStartLines(): string[] {
  const readme = readFileSync(`${root}README.md`, "utf8");
  const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const block = blocks.find((b) => b.includes("curl -p -x http://demo:demo-password@127.0.0.1:8080"));
  assert.ok(block, "the README has a quick-start block with the demo user's curl line");
  return block.split("\n").filter((l) => l.trim() !== "");
}

function sh(line: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("sh", ["-c", line], { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

describe("the README's quick start, against npm start's configuration", () => {
  let gw: GatewayProcess;
  let web: ChildProcess | undefined;
  let gwPort: number;
  let webPort: number;
  const lines = quickStartLines();
  const moved = (l: string): string => l.replaceAll("127.0.0.1:8080", `127.0.0.1:${gwPort}`).replaceAll("9000", String(webPort));

  before(async () => {
    webPort = await freePort();
    gw = new GatewayProcess(`${root}examples/portcullis.toml`, {
      PORTCULLIS__LISTENER__0__BIND: "127.0.0.1:0",
      // The example's second rule allows the quick start's local port: it follows the port moved above.
      PORTCULLIS__POLICY__RULE__1__PORTS__0: String(webPort),
    });
    await gw.waitFor(() => /listener egress \(connect\) up on 127\.0\.0\.1:\d+/.test(gw.stderr), "gateway up");
    gwPort = Number(/up on 127\.0\.0\.1:(\d+)/.exec(gw.stderr)![1]);
  });
  after(async () => {
    web?.kill();
    gw.child.kill("SIGTERM");
    await gw.exit();
  });

  test("the local web server line, then each curl line does what its comment says", async () => {
    const server = lines.find((l) => l.startsWith("node -e"));
    assert.ok(server, "the block starts a local web server");
    assert.match(server, /&\s*$/, "in the background");
    web = spawn("sh", ["-c", `exec ${moved(server).replace(/&\s*$/, "")}`], { stdio: "ignore" });
    await withTimeout(
      (async () => {
        for (;;) {
          const up = await new Promise<boolean>((r) => net.connect(webPort, "127.0.0.1").once("connect", function (this: net.Socket) { this.destroy(); r(true); }).once("error", () => r(false)));
          if (up) return;
          await sleep(50);
        }
      })(),
      15_000,
      "local web server up",
    );

    const curls = lines.filter((l) => l.startsWith("curl "));
    assert.ok(curls.length >= 3, "a tunnel, a wrong password and a refused destination");
    for (const line of curls) {
      const cut = line.indexOf(" #");
      const comment = line.slice(cut + 2).trim();
      const logBefore = gw.stdout.length;
      // The command as written, plus what lets the test read the proxy's answer to the CONNECT.
      const r = await sh(`${moved(line.slice(0, cut))} -sS -w '\\n%{http_connect}'`);
      const connectStatus = r.stdout.trim().split("\n").at(-1);
      const status = /^(\d{3}):\s*(.*)$/.exec(comment);
      if (status === null) {
        // The comment is the body the tunnel brings back.
        assert.equal(r.code, 0, `${line}\n${r.stderr}`);
        assert.equal(connectStatus, "200");
        assert.ok(r.stdout.startsWith(comment), `${line}: got ${JSON.stringify(r.stdout)}`);
        continue;
      }
      assert.equal(connectStatus, status[1], `${line}: the proxy's answer\n${r.stdout}${r.stderr}`);
      // "event=deny reason=private_address": one log line with every field the comment names.
      const fields = status[2]!.split(/\s+/).filter((f) => f.includes("="));
      assert.ok(fields.length > 0, `${line}: the comment names log fields`);
      await gw.waitFor(() => gw.stdout.slice(logBefore).split("\n").some((l) => fields.every((f) => l.includes(f))), `log line with ${fields.join(" ")}`, 10_000);
    }
  });
});
