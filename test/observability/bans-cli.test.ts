/**
 * `portcullis bans` run as a real process against a running gateway's admin
 * listener: add, list, remove, and the exit codes of each failure.
 */
import net from "node:net";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connectDoc, probe } from "../gateway/fixtures.js";
import { TOKEN, type Observed, startObserved } from "./fixtures.js";
import { runCli } from "../helpers/cli.js";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return runCli(["bans", ...args], { cwd: process.cwd(), env: { ...process.env, PORTCULLIS_ADMIN_TOKEN: "", PORTCULLIS_ADMIN_URL: "", ...env } });
}

describe("portcullis bans", () => {
  let o: Observed;
  before(async () => {
    o = await startObserved(await connectDoc(), { processMetrics: false });
  });
  after(() => o?.stop());

  test("add bans the address, list shows it, remove lets it connect again", async () => {
    const env = { PORTCULLIS_ADMIN_TOKEN: TOKEN };
    const add = await cli(["add", "127.0.0.60", "--duration", "15m", "--reason", "scanner", "--url", o.obs.url], env);
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, /^banned 127\.0\.0\.60 until \d{4}-/);
    const refused = await probe(o.port, "127.0.0.60");
    refused.client.destroy();
    assert.equal(refused.served, false);

    const list = await cli(["list", "--url", o.obs.url], env);
    assert.equal(list.code, 0, list.stderr);
    const lines = list.stdout.trim().split("\n");
    assert.match(lines[0]!, /^KEY\s+UNTIL\s+LEFT$/);
    assert.match(lines[1]!, /^127\.0\.0\.60\s+\S+Z\s+1[45]m$/);

    const rm = await cli(["remove", "127.0.0.60", "--url", o.obs.url, "--token", TOKEN]);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal(rm.stdout.trim(), "unbanned 127.0.0.60");
    const served = await probe(o.port, "127.0.0.60");
    served.client.destroy();
    assert.equal(served.served, true);

    const empty = await cli(["list", "--json", "--url", o.obs.url], env);
    assert.deepEqual(JSON.parse(empty.stdout), { bans: [] });
  });

  test("failures: not banned and wrong token exit 1 with the API's code; bad usage exits 2; an unreachable gateway exits 1", async () => {
    // A port that was free a moment ago: nothing listens there.
    const spare = net.createServer();
    await new Promise<void>((r) => spare.listen(0, "127.0.0.1", r));
    const closedPort = (spare.address() as net.AddressInfo).port;
    await new Promise<void>((r) => spare.close(() => r()));
    const [notBanned, wrong, usage, noToken, down] = await Promise.all([
      cli(["remove", "127.0.0.61", "--url", o.obs.url, "--token", TOKEN]),
      cli(["list", "--url", o.obs.url, "--token", "wrong-token-wrong-token"]),
      cli(["frobnicate", "--token", TOKEN]),
      cli(["list", "--url", o.obs.url]),
      cli(["list", "--url", `http://127.0.0.1:${closedPort}`, "--token", TOKEN]),
    ]);
    assert.equal(notBanned.code, 1);
    assert.match(notBanned.stderr, /not_banned/);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /unauthorized/);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /unknown command "frobnicate"/);
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /no token/);
    assert.equal(down.code, 1);
    assert.equal(down.stderr.trim(), `portcullis bans: cannot reach http://127.0.0.1:${closedPort} (ECONNREFUSED)`);
    for (const r of [notBanned, wrong, usage, noToken, down]) assert.doesNotMatch(r.stderr, /at .*\.[jt]s:\d+/, "no stack trace");
  });
});
