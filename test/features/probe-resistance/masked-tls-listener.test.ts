import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { after, before, describe, test } from "node:test";
import { matchesServerName } from "../../../src/features/probe-resistance/masked-tls-listener.js";
import { type Running, type SelfSigned, captureClientHello, exchange, fingerprint, selfSigned, startHttpsMask, startTlsFront, tlsExchange } from "./fixtures.js";
import { waitUntil } from "../../helpers/wait.js";

const REQUEST = Buffer.from("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");

/** A TCP proxy that forwards the first `head` client bytes, then holds the rest back for `holdMs`. */
async function slowStart(targetPort: number, head: number, holdMs: number): Promise<{ port: number; close(): void }> {
  const server = net.createServer((client) => {
    const up = net.connect(targetPort, "127.0.0.1");
    let sent = 0;
    let held: Buffer[] | undefined;
    client.on("data", (d: Buffer) => {
      if (held) return void held.push(d);
      if (sent + d.length <= head) {
        sent += d.length;
        return void up.write(d);
      }
      up.write(d.subarray(0, head - sent));
      held = [d.subarray(head - sent)];
      sent = head;
      setTimeout(() => {
        for (const h of held!) up.write(h);
        held = undefined;
        client.on("data", (x: Buffer) => up.write(x));
      }, holdMs);
    });
    up.pipe(client);
    client.on("error", () => up.destroy());
    up.on("error", () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

describe("masked TLS connection handling", () => {
  let gw: SelfSigned;
  let maskCert: SelfSigned;
  let mask: Running;
  before(async () => {
    [gw, maskCert] = await Promise.all([selfSigned("gw.test"), selfSigned("mask.test")]);
    mask = await startHttpsMask(maskCert);
  });
  after(async () => {
    await mask.close();
  });

  test("server names: exact and case-insensitive; a wildcard covers exactly one label", () => {
    const names = ["gw.test", "*.Apps.Example.test"];
    assert.equal(matchesServerName(names, "gw.test"), true);
    assert.equal(matchesServerName(names, "a.apps.example.test"), true);
    assert.equal(matchesServerName(names, "apps.example.test"), false);
    assert.equal(matchesServerName(names, "a.b.apps.example.test"), false);
    assert.equal(matchesServerName(names, "xgw.test"), false);
    assert.equal(matchesServerName([], "gw.test"), false);
  });

  test("the terminated socket is handed over with its server name", async () => {
    const seen: string[] = [];
    const front = await startTlsFront({
      names: ["*.gw.test"],
      secureContext: tls.createSecureContext({ cert: gw.cert, key: gw.key }),
      mask: { host: "127.0.0.1", port: mask.port },
      onTerminated: (t, info) => {
        seen.push(info.serverName);
        t.on("error", () => t.destroy());
        t.once("data", () => t.end("ok"));
      },
    });
    try {
      const r = await tlsExchange(front.port, "API.gw.test", REQUEST);
      assert.equal(r.bytes.toString(), "ok");
      assert.deepEqual(seen, ["api.gw.test"]);
      assert.deepEqual(front.outcomes, [{ kind: "terminated", serverName: "api.gw.test" }]);
    } finally {
      await front.close();
    }
  });

  test("a ClientHello that stalls past the peek bound is masked: the prober finishes its handshake with the real site", async () => {
    const front = await startTlsFront({
      names: ["gw.test"],
      secureContext: tls.createSecureContext({ cert: gw.cert, key: gw.key }),
      mask: { host: "127.0.0.1", port: mask.port },
      peekTimeoutMs: 100,
      delayFloorMs: 0,
      delayCeilingMs: 0,
    });
    const slow = await slowStart(front.port, 20, 300);
    try {
      // Even the served name: a hello that does not arrive in time is never terminated.
      const r = await tlsExchange(slow.port, "gw.test", REQUEST);
      assert.equal(r.error, undefined);
      assert.equal(r.fingerprint, fingerprint(maskCert.cert));
      assert.match(r.bytes.toString(), /^HTTP\/1\.1 200 OK/);
      await waitUntil(() => front.outcomes.length === 1, { timeoutMs: 3_000, message: "outcome" });
      const o = front.outcomes[0]!;
      assert.equal(o.kind, "masked");
      assert.deepEqual(o.kind === "masked" && o.verdict, { kind: "incomplete", reason: "timeout" });
    } finally {
      slow.close();
      await front.close();
    }
  });

  test("without a mask host, anything not terminated gets zero bytes and a close after the delay", async () => {
    const front = await startTlsFront({
      names: ["gw.test"],
      secureContext: tls.createSecureContext({ cert: gw.cert, key: gw.key }),
      delayFloorMs: 120,
      delayCeilingMs: 120,
    });
    try {
      for (const input of [await captureClientHello("other.test"), Buffer.from("garbage\r\n\r\n")]) {
        const r = await exchange(front.port, input, { timeoutMs: 4_000 });
        assert.equal(r.bytes.length, 0);
        assert.equal(r.end, "closed");
        assert.ok(r.elapsedMs >= 110 && r.elapsedMs < 2_000, `${r.elapsedMs} ms`);
      }
      await waitUntil(() => front.outcomes.length === 2, { timeoutMs: 3_000, message: "outcomes" });
      assert.deepEqual(
        front.outcomes.map((o) => o.kind),
        ["closed", "closed"],
      );
    } finally {
      await front.close();
    }
  });

  test("reject_handshake applies to well-formed hellos only: garbage is still masked", async () => {
    const front = await startTlsFront({
      names: ["gw.test"],
      secureContext: tls.createSecureContext({ cert: gw.cert, key: gw.key }),
      mask: { host: "127.0.0.1", port: mask.port },
      unknownSniAction: "reject_handshake",
      delayFloorMs: 0,
      delayCeilingMs: 0,
    });
    try {
      const garbage = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x30]), Buffer.alloc(48, 0x07)]);
      const direct = await exchange(mask.port, garbage);
      const via = await exchange(front.port, garbage);
      assert.deepEqual(via.bytes, direct.bytes);
      const noSni = await exchange(front.port, await captureClientHello(undefined));
      assert.equal(noSni.bytes.toString("hex"), "15030300020270");
    } finally {
      await front.close();
    }
  });
});
