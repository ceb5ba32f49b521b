/**
 * Probe resistance on a real Gateway's connect listener, started from a
 * configuration: every probe gets byte for byte what the mask host answers
 * to the same input and nothing from the gateway; real clients with
 * credentials still tunnel; probing feeds the penalty box.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import { seededRng } from "../../../src/core/random.js";
import { connectDoc, curl, startGateway, startOrigin, type Origin, type Running as Gw } from "../../gateway/fixtures.js";
import { type Running, closedPort, exchange, startHttpMask } from "./fixtures.js";
import { memoryBox } from "../../helpers/memory-box.js";
import { waitUntil, sleep } from "../../helpers/wait.js";

function randomBytes(n: number, seed: number): Buffer {
  const rng = seededRng(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rng.next() * 256);
  return b;
}

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

const PROBES: Array<[string, Buffer]> = [
  ["no credentials", Buffer.from("CONNECT internal.test:443 HTTP/1.1\r\nHost: internal.test:443\r\n\r\n")],
  ["wrong credentials", Buffer.from(`CONNECT internal.test:443 HTTP/1.1\r\nHost: internal.test:443\r\nProxy-Authorization: ${basic("alice", "wrong")}\r\n\r\n`)],
  ["unknown user", Buffer.from(`CONNECT internal.test:443 HTTP/1.1\r\nHost: internal.test:443\r\nProxy-Authorization: ${basic("mallory", "x")}\r\n\r\n`)],
  ["plain GET", Buffer.from("GET /index.html HTTP/1.1\r\nHost: www.example.test\r\nUser-Agent: probe/1.0\r\nAccept: */*\r\n\r\n")],
  ["random binary", randomBytes(2048, 7)],
  ["truncated CONNECT", Buffer.from("CONNECT internal.test:443 HTTP/1.1\r\nHost: intern")],
  ["malformed CONNECT", Buffer.from("CONNECT not a target HTTP/1.1\r\nHost: x\r\n\r\n")],
  ["huge header (GET)", Buffer.from(`GET / HTTP/1.1\r\nHost: www.example.test\r\nX-Filler: ${"a".repeat(20_000)}\r\n\r\n`)],
  ["huge header (CONNECT, over max_request_bytes)", Buffer.from(`CONNECT internal.test:443 HTTP/1.1\r\nHost: internal.test:443\r\nX-Filler: ${"b".repeat(20_000)}\r\n\r\n`)],
];

/** Fast delays so the suite stays quick; the timing tests set their own. */
const FAST = { mask: "", delay: { floor: "10ms", ceiling: "30ms" } };

describe("connect listener with probe_resistance", () => {
  let mask: Running;
  let origin: Origin;
  let gw: Gw;

  before(async () => {
    mask = await startHttpMask();
    origin = await startOrigin();
    gw = await startGateway(
      await connectDoc({
        // Many probes from one address in this suite: the ban is tested separately.
        guard: { ban: { failures: 1000, backoff_after: 1000 } },
        listener: { probe_resistance: { ...FAST, mask: `127.0.0.1:${mask.port}` } },
      }),
    );
  });
  after(async () => {
    await gw.stop();
    await mask.close();
    await origin.close();
  });

  for (const [name, input] of PROBES) {
    test(`${name}: the client sees exactly the mask host's answer`, async () => {
      const direct = await exchange(mask.port, input);
      const via = await exchange(gw.port, input);
      assert.ok(direct.bytes.length > 0, "the mask host answers this probe directly");
      assert.equal(via.bytes.toString("latin1"), direct.bytes.toString("latin1"));
      assert.deepEqual(via.bytes, direct.bytes);
      assert.equal(via.end, "closed");
      assert.doesNotMatch(via.bytes.toString("latin1"), /407|Proxy-Authenticate/i);
    });
  }

  test("a probe that does not half-close still gets only the mask host's answer", async () => {
    const input = Buffer.from("GET / HTTP/1.1\r\nHost: www.example.test\r\n\r\n");
    const direct = await exchange(mask.port, input, { halfClose: false });
    const via = await exchange(gw.port, input, { halfClose: false });
    assert.match(direct.bytes.toString(), /^HTTP\/1\.1 200 OK\r\n/);
    assert.deepEqual(via.bytes, direct.bytes);
  });

  test("masked probes are logged as auth rejections with their reason", async () => {
    await exchange(gw.port, PROBES[3]![1]);
    const reasons = gw.log.events("auth").map((r) => r.reason);
    assert.ok(reasons.includes("masked_not_connect"), JSON.stringify(reasons));
    assert.ok(reasons.includes("masked_no_credentials"));
    assert.ok(reasons.includes("masked_bad_credentials"));
  });

  test("curl with the right --proxy-user still tunnels through the masked listener", async () => {
    const r = await curl(["-p", "-x", `http://127.0.0.1:${gw.port}`, "--proxy-user", "alice:s3cret", `http://127.0.0.1:${origin.port}/`]);
    assert.equal(r.code, 0, r.stderr + JSON.stringify(gw.log.events("auth").slice(-3)));
    assert.equal(r.stdout, "hello from origin");
  });

  test("curl with a wrong --proxy-user gets the mask host's answer, never a 407", async () => {
    const r = await curl(["-p", "-x", `http://127.0.0.1:${gw.port}`, "--proxy-user", "alice:nope", "-o", "/dev/null", "-w", "%{http_connect}", `http://127.0.0.1:${origin.port}/`]);
    // The mask site answers CONNECT with its own 405.
    assert.equal(r.stdout, "405");
  });
});

describe("probe_resistance and the guard", () => {
  test("masked wrong-credential attempts feed the penalty box until the prober is banned", async () => {
    const mask = await startHttpMask();
    const origin = await startOrigin();
    const gw = await startGateway(
      await connectDoc({
        guard: { ban: { failures: 3, window: "1m", backoff_after: 100 } },
        listener: { probe_resistance: { ...FAST, mask: `127.0.0.1:${mask.port}` } },
      }),
    );
    try {
      const wrong = PROBES[1]![1];
      const direct = await exchange(mask.port, wrong);
      for (let i = 0; i < 2; i++) {
        const via = await exchange(gw.port, wrong, { localAddress: "127.0.0.7" });
        assert.deepEqual(via.bytes, direct.bytes, `attempt ${i + 1} is masked`);
      }
      assert.equal(memoryBox(gw.gateway).status(gw.gateway.keyOf("127.0.0.7")).streak, 2);
      await exchange(gw.port, wrong, { localAddress: "127.0.0.7" });
      assert.equal(memoryBox(gw.gateway).status(gw.gateway.keyOf("127.0.0.7")).bans, 1);
      // Banned: the authenticated path is refused (the right credentials are masked too), while others are unaffected.
      const good = Buffer.from(`CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\nHost: 127.0.0.1\r\nProxy-Authorization: ${basic("alice", "s3cret")}\r\n\r\n`);
      const banned = await exchange(gw.port, good, { localAddress: "127.0.0.7" });
      assert.deepEqual(banned.bytes, (await exchange(mask.port, good)).bytes, "a banned address still sees the mask host, never a tunnel");
      assert.doesNotMatch(banned.bytes.toString("latin1"), /Connection established/);
      assert.equal(memoryBox(gw.gateway).status(gw.gateway.keyOf("127.0.0.8")).bans, 0);
      assert.equal(gw.log.events("ban").length, 1);
      const other = await curl(["-p", "-x", `http://127.0.0.1:${gw.port}`, "--proxy-user", "alice:s3cret", `http://127.0.0.1:${origin.port}/`]);
      assert.equal(other.stdout, "hello from origin");
    } finally {
      await gw.stop();
      await mask.close();
      await origin.close();
    }
  });

  test("repetition never changes a probe's treatment: with the default guard the 11th and the 20th probe still get the mask host's bytes", async () => {
    const mask = await startHttpMask();
    // The default guard: 10 failures ban an address.
    const gw = await startGateway(await connectDoc({ listener: { probe_resistance: { mask: `127.0.0.1:${mask.port}` } } }));
    try {
      for (const [name, probe] of [PROBES[1]!, PROBES[3]!]) {
        const direct = await exchange(mask.port, probe);
        for (let i = 1; i <= 20; i++) {
          const via = await exchange(gw.port, probe, { localAddress: "127.0.0.11", timeoutMs: 4_000 });
          assert.deepEqual(via.bytes, direct.bytes, `${name}: probe ${i} gets the mask host's bytes`);
          assert.equal(via.end, "closed", `${name}: probe ${i} is closed as the mask host closes it`);
        }
      }
      // The failures still count for the operator: the address is banned and the log says so.
      const status = memoryBox(gw.gateway).status(gw.gateway.keyOf("127.0.0.11"));
      assert.ok(status.bans >= 1, JSON.stringify(status));
      assert.ok(gw.log.events("ban").length >= 1);
      assert.ok(gw.log.events("limited").some((e) => e.reason === "banned_masked"), "masked refusals are logged");
    } finally {
      await gw.stop();
      await mask.close();
    }
  });

  test("a banned prober holds at most max_masked_per_address masked connections at once", async () => {
    const mask = await startHttpMask();
    const gw = await startGateway(
      await connectDoc({
        guard: { ban: { failures: 1, window: "1m", backoff_after: 100 } },
        listener: { probe_resistance: { ...FAST, mask: `127.0.0.1:${mask.port}`, max_masked_per_address: 2 } },
      }),
    );
    try {
      await exchange(gw.port, PROBES[1]![1], { localAddress: "127.0.0.12" });
      await waitUntil(() => memoryBox(gw.gateway).status(gw.gateway.keyOf("127.0.0.12")).bans === 1, { timeoutMs: 3_000, message: "the ban" });
      // Two held-open masked connections (no request yet), then a third is refused at accept.
      const held = [0, 1].map(() => exchange(gw.port, Buffer.alloc(0), { halfClose: false, localAddress: "127.0.0.12", timeoutMs: 1_500 }));
      await waitUntil(() => gw.gateway.openConnections >= 2, { timeoutMs: 3_000, message: "two masked connections" });
      const third = await exchange(gw.port, PROBES[3]![1], { localAddress: "127.0.0.12", timeoutMs: 1_500 });
      assert.equal(third.bytes.length, 0);
      assert.notEqual(third.end, "timeout");
      await Promise.all(held);
    } finally {
      await gw.stop();
      await mask.close();
    }
  });

  test("the mask connection dialled at accept goes away with a client that leaves before it is classified", async () => {
    const seen: net.Socket[] = [];
    const mask = net.createServer((s) => {
      seen.push(s);
      s.on("error", () => {});
      s.resume();
    });
    await new Promise<void>((r) => mask.listen(0, "127.0.0.1", () => r()));
    const gw = await startGateway(await connectDoc({ listener: { probe_resistance: { mask: `127.0.0.1:${(mask.address() as net.AddressInfo).port}` } } }));
    try {
      const c = net.connect(gw.port, "127.0.0.1", () => c.write("CONN"));
      c.on("error", () => {});
      await waitUntil(() => seen.length === 1, { timeoutMs: 3_000, message: "the mask host is dialled at accept" });
      c.destroy();
      await waitUntil(() => seen[0]!.readableEnded || seen[0]!.destroyed, { timeoutMs: 3_000, message: "the mask connection closed" });
    } finally {
      await gw.stop();
      mask.close();
    }
  });

  test("a masked connection holds its per-IP slot while it is relayed", async () => {
    const mask = await startHttpMask();
    const gw = await startGateway(
      await connectDoc({
        guard: { max_connections_per_ip: 1, ban: { failures: 1000 } },
        listener: { probe_resistance: { ...FAST, mask: `127.0.0.1:${mask.port}` } },
      }),
    );
    try {
      // A masked client that keeps its connection open (no FIN, the mask site keeps it alive briefly).
      const held = exchange(gw.port, Buffer.from("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), { halfClose: false, localAddress: "127.0.0.9" });
      const start = Date.now();
      while (gw.gateway.openConnections === 0 && Date.now() - start < 3000) await sleep(10);
      const second = await exchange(gw.port, PROBES[3]![1], { localAddress: "127.0.0.9", timeoutMs: 3000 });
      assert.equal(second.bytes.length, 0, "the second connection from the same address is refused while the first is masked");
      const first = await held;
      assert.match(first.bytes.toString(), /^HTTP\/1\.1 200 OK/);
    } finally {
      await gw.stop();
      await mask.close();
    }
  });

  test("unreachable mask host: zero bytes, closed no earlier than the delay floor and within a bound", async () => {
    const port = await closedPort();
    const gw = await startGateway(
      await connectDoc({
        guard: { ban: { failures: 1000, backoff_after: 1000 } },
        listener: { probe_resistance: { mask: `127.0.0.1:${port}`, delay: { floor: "150ms", ceiling: "300ms" } } },
      }),
    );
    try {
      for (const [, input] of PROBES.slice(0, 5)) {
        const via = await exchange(gw.port, input, { timeoutMs: 4_000 });
        assert.equal(via.bytes.length, 0, "no byte of any kind reaches the client");
        assert.notEqual(via.end, "timeout", "the connection is closed, not left hanging");
        assert.ok(via.elapsedMs >= 140, `closed after ${via.elapsedMs} ms, before the floor`);
        assert.ok(via.elapsedMs < 2_000, `closed after ${via.elapsedMs} ms`);
      }
    } finally {
      await gw.stop();
    }
  });

  test("without probe_resistance the listener still answers 407 (masking is opt-in)", async () => {
    const gw = await startGateway(await connectDoc());
    try {
      const via = await exchange(gw.port, PROBES[0]![1], { timeoutMs: 3000 });
      assert.match(via.bytes.toString(), /^HTTP\/1\.1 407/);
    } finally {
      await gw.stop();
    }
  });
});
