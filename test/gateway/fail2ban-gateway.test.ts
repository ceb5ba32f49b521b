import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, connectDoc, connectHead, startGateway } from "./fixtures.js";
import { sleep } from "../helpers/wait.js";

const filter = new URL("../../deploy/fail2ban/filter.d/portcullis.conf", import.meta.url).pathname;

function fail2banRegex(logFile: string): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile("fail2ban-regex", [logFile, filter], { timeout: 30_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
}

for (const format of ["logfmt", "json"] as const) {
  describe(`fail2ban against lines the gateway wrote (${format})`, () => {
    test("the shipped filter matches every failed login from the gateway and nothing else", async () => {
      const gw = await startGateway(await connectDoc({ log: { format }, guard: { max_auth_attempts: 3, ban: { failures: 100 } } }));
      const dir = await mkdtemp(join(tmpdir(), "portcullis-f2b-"));
      try {
        const c = new Client(gw.port, "127.0.16.1");
        await c.connected();
        for (let i = 0; i < 3; i++) {
          const before = (c.text().match(/407/g) ?? []).length;
          c.write(connectHead("127.0.0.1:1", { user: "mallory", password: `guess${i}` }));
          await c.until(() => (c.text().match(/407/g) ?? []).length > before, 5000, "407");
        }
        await c.waitClosed();
        const ok = new Client(gw.port, "127.0.16.2");
        await ok.connected();
        ok.write(connectHead("127.0.0.1:1", { user: "alice", password: "s3cret" }));
        await ok.until(() => ok.text().includes("\r\n\r\n"), 5000, "answer");
        ok.destroy();
        await sleep(50);
        const lines = gw.log.lines;
        const rejects = lines.filter((l) => l.includes("reject"));
        assert.equal(rejects.length, 3);
        const file = join(dir, "gateway.log");
        await writeFile(file, `${lines.join("\n")}\n`);
        const out = await fail2banRegex(file);
        const m = /Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed/.exec(out);
        assert.ok(m, out);
        assert.equal(Number(m[1]), lines.length);
        assert.equal(Number(m[3]), 3, out);
        assert.match(out, /127\.0\.16\.1/);
      } finally {
        await gw.stop();
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
}
