/**
 * Dynamic record sizing, observed on the wire: a raw TCP tap between a real
 * TLS client and the gateway parses the TLS record headers the gateway sends.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import { before, describe, test } from "node:test";
import { DRS_FULL_RECORD, DRS_MEDIUM_RECORD, DRS_SMALL_RECORD, applyDrs, drsRecordLimit } from "../../../src/features/probe-resistance/drs.js";
import type { MaskedTlsOptions } from "../../../src/features/probe-resistance/masked-tls-listener.js";
import { type SelfSigned, type TlsFront, selfSigned, startTlsFront } from "./fixtures.js";

interface Record {
  type: number;
  length: number;
}

/** Splits a captured server -> client byte stream into TLS records. */
function parseRecords(stream: Buffer): Record[] {
  const out: Record[] = [];
  let i = 0;
  while (i + 5 <= stream.length) {
    const length = stream.readUInt16BE(i + 3);
    out.push({ type: stream[i]!, length });
    i += 5 + length;
  }
  assert.equal(i, stream.length, "the capture ends on a record boundary");
  return out;
}

/** A TCP tap: forwards both ways, records what the server sends. */
async function startTap(targetPort: number): Promise<{ port: number; captured: () => Buffer; close(): void }> {
  const chunks: Buffer[] = [];
  const server = net.createServer((client) => {
    const up = net.connect(targetPort, "127.0.0.1");
    client.pipe(up);
    up.on("data", (d: Buffer) => chunks.push(d));
    up.pipe(client);
    client.on("error", () => up.destroy());
    up.on("error", () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { port: (server.address() as net.AddressInfo).port, captured: () => Buffer.concat(chunks), close: () => server.close() };
}

/** Connects through the tap, reads until the server ends, returns the plaintext. */
function fetchAll(port: number, options: tls.ConnectionOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const c = tls.connect({ port, host: "127.0.0.1", servername: "gw.test", rejectUnauthorized: false, ...options });
    const timer = setTimeout(() => reject(new Error("timeout")), 10_000);
    c.on("data", (d: Buffer) => chunks.push(d));
    c.on("end", () => {
      clearTimeout(timer);
      c.end();
      resolve(Buffer.concat(chunks));
    });
    c.on("error", reject);
  });
}

/** TLS 1.2 AES-GCM: every application_data record carries 8 bytes of explicit nonce and a 16-byte tag. */
const TLS12 = { maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256" } as const;
const TLS12_OVERHEAD = 24;
/** TLS 1.3: one inner content-type byte and a 16-byte tag. */
const TLS13_OVERHEAD = 17;

function payload(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("dynamic record sizing on the wire", () => {
  let cert: SelfSigned;
  before(async () => {
    cert = await selfSigned("gw.test");
  });

  async function run(drs: boolean, onTerminated: MaskedTlsOptions["onTerminated"], client: tls.ConnectionOptions, extra: Partial<MaskedTlsOptions> = {}) {
    const front: TlsFront = await startTlsFront({
      names: ["gw.test"],
      secureContext: tls.createSecureContext({ cert: cert.cert, key: cert.key }),
      drs,
      onTerminated,
      ...extra,
    });
    const tap = await startTap(front.port);
    try {
      const plain = await fetchAll(tap.port, client);
      return { plain, records: parseRecords(tap.captured()) };
    } finally {
      tap.close();
      await front.close();
    }
  }

  const writeThenEnd =
    (...chunks: Buffer[]): MaskedTlsOptions["onTerminated"] =>
    (t) => {
      t.on("error", () => t.destroy());
      // Written at once, before the handshake has finished: DRS must hold from the first record.
      for (const c of chunks) t.write(c);
      t.end();
    };

  test("TLS 1.2: records 1-40 carry 1369 bytes, 41-60 carry 4096, then 16384; nothing lost", async () => {
    const data = payload(2 * 1024 * 1024, 1);
    const { plain, records } = await run(true, writeThenEnd(data), TLS12);
    assert.equal(sha(plain), sha(data), "the client receives exactly what was sent");
    const app = records.filter((r) => r.type === 23).map((r) => r.length - TLS12_OVERHEAD);
    assert.equal(app.reduce((a, b) => a + b, 0), data.length, "total payload on the wire equals what was sent");
    for (let i = 0; i < app.length; i++) {
      assert.ok(app[i]! <= drsRecordLimit(i), `record ${i + 1}: ${app[i]} > ${drsRecordLimit(i)}`);
    }
    // With plenty of data every record is as large as its phase allows.
    assert.deepEqual(app.slice(0, 40), Array(40).fill(DRS_SMALL_RECORD));
    assert.deepEqual(app.slice(40, 60), Array(20).fill(DRS_MEDIUM_RECORD));
    assert.deepEqual(app.slice(60, -1), Array(app.length - 61).fill(DRS_FULL_RECORD));
  });

  test("TLS 1.2 with DRS off: full-size records from the first one", async () => {
    const data = payload(1024 * 1024, 2);
    const { plain, records } = await run(false, writeThenEnd(data), TLS12);
    assert.equal(sha(plain), sha(data));
    const app = records.filter((r) => r.type === 23).map((r) => r.length - TLS12_OVERHEAD);
    assert.deepEqual(app.slice(0, -1), Array(app.length - 1).fill(DRS_FULL_RECORD));
    assert.equal(app.reduce((a, b) => a + b, 0), data.length);
  });

  test("small writes that go out alone count as records: the ramp is by records, and it never restarts once saturated", async () => {
    const small = Array.from({ length: 70 }, (_, i) => payload(100, i));
    const big = payload(200_000, 9);
    const late = Array.from({ length: 5 }, (_, i) => payload(5_000, 100 + i));
    const { plain, records } = await run(
      true,
      (t) => {
        t.on("error", () => t.destroy());
        // Each small write after a pause longer than the flush wait: nothing follows it in time, so it goes out short.
        const writeSmall = (i: number): void => {
          if (i === small.length) return writeBig();
          t.write(small[i]!, () => setTimeout(() => writeSmall(i + 1), 8));
        };
        const writeBig = (): void => {
          t.write(big);
          t.write(Buffer.alloc(0), () => writeLate(0));
        };
        // Later writes on the long-lived connection, one at a time: each is one full record, no new ramp.
        const writeLate = (i: number): void => {
          if (i === late.length) {
            t.end();
            return;
          }
          t.write(late[i]!, () => writeLate(i + 1));
        };
        writeSmall(0);
      },
      TLS12,
      { drsFlushMs: 1 },
    );
    assert.equal(sha(plain), sha(Buffer.concat([...small, big, ...late])));
    const app = records.filter((r) => r.type === 23).map((r) => r.length - TLS12_OVERHEAD);
    // The first 60 records are the first 60 small writes, one record each.
    assert.deepEqual(app.slice(0, 60), Array(60).fill(100));
    // After the ramp: the small writes, the big write in full records, the late writes whole.
    const rest = app.slice(60);
    assert.deepEqual(rest.slice(0, 10), Array(10).fill(100));
    assert.ok(rest.filter((n) => n === DRS_FULL_RECORD).length >= 12, `full records after the ramp: ${rest.join(",")}`);
    assert.deepEqual(app.slice(-5), Array(5).fill(5_000));
    assert.equal(app.reduce((a, b) => a + b, 0), 70 * 100 + big.length + 5 * 5_000);
  });

  test("queued small writes are carried into whole records: 40 x 1369, then 4096", async () => {
    const small = Array.from({ length: 700 }, (_, i) => payload(100, i));
    const { plain, records } = await run(true, writeThenEnd(...small), TLS12);
    assert.equal(sha(plain), sha(Buffer.concat(small)));
    const app = records.filter((r) => r.type === 23).map((r) => r.length - TLS12_OVERHEAD);
    assert.deepEqual(app.slice(0, 40), Array(40).fill(DRS_SMALL_RECORD));
    // 70,000 - 40 x 1369 = 3 x 4096 + 2952: the last one goes out short when nothing follows.
    assert.deepEqual(app.slice(40), [DRS_MEDIUM_RECORD, DRS_MEDIUM_RECORD, DRS_MEDIUM_RECORD, 2952]);
  });

  /** 200 KB written in 64 KiB pieces, each only once the previous one is written (a relay's read boundaries). */
  const inReads =
    (data: Buffer, piece = 64 * 1024): MaskedTlsOptions["onTerminated"] =>
    (t) => {
      t.on("error", () => t.destroy());
      const writeFrom = (at: number): void => {
        if (at >= data.length) {
          t.end();
          return;
        }
        t.write(data.subarray(at, at + piece), () => writeFrom(at + piece));
      };
      writeFrom(0);
    };

  /** Exact ramp: 40 x 1369, 20 x 4096, then full records but for the last; the payload adds up. */
  function assertExactRamp(app: number[], total: number): void {
    assert.deepEqual(app.slice(0, 40), Array(40).fill(DRS_SMALL_RECORD), `records 1-40: ${app.slice(0, 40).join(",")}`);
    assert.deepEqual(app.slice(40, 60), Array(20).fill(DRS_MEDIUM_RECORD), `records 41-60: ${app.slice(40, 60).join(",")}`);
    for (const n of app.slice(60)) assert.ok(n <= DRS_FULL_RECORD);
    assert.equal(app.reduce((a, b) => a + b, 0), total);
  }

  test("TLS 1.2: a 200 KB download at 64 KiB read boundaries has exact record sizes", async () => {
    const data = payload(200 * 1024, 11);
    const { plain, records } = await run(true, inReads(data), TLS12);
    assert.equal(sha(plain), sha(data));
    assertExactRamp(records.filter((r) => r.type === 23).map((r) => r.length - TLS12_OVERHEAD), data.length);
  });

  test("TLS 1.3: a 200 KB download at 64 KiB read boundaries has exact record sizes", async () => {
    const data = payload(200 * 1024, 12);
    const { plain, records } = await run(true, inReads(data), { minVersion: "TLSv1.3" });
    assert.equal(sha(plain), sha(data));
    const enc = records.filter((r) => r.type === 23).map((r) => r.length - TLS13_OVERHEAD);
    // The encrypted handshake flight and session tickets come first (also type 23); the data starts at the first 1369.
    const first = enc.indexOf(DRS_SMALL_RECORD);
    assert.ok(first >= 0 && first <= 8, `handshake and tickets before the data: ${enc.slice(0, 10).join(",")}`);
    // TLS 1.3 encrypts the closing alert too: a last record of 2 bytes (close_notify) after the data.
    const data13 = enc.slice(first);
    if (data13.at(-1) === 2) data13.pop();
    assertExactRamp(data13, data.length);
  });

  test("through a real socket pipe (upstream read boundaries as the kernel gives them) the sizes are exact too", async () => {
    const data = payload(200 * 1024, 13);
    const upstream = net.createServer((s) => s.end(data));
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", () => r()));
    const upPort = (upstream.address() as net.AddressInfo).port;
    try {
      const { plain, records } = await run(
        true,
        (t) => {
          t.on("error", () => t.destroy());
          net.connect(upPort, "127.0.0.1").pipe(t);
        },
        TLS12,
        // Generous, so a loaded machine's scheduling gaps between reads do not cut records.
        { drsFlushMs: 200 },
      );
      assert.equal(sha(plain), sha(data));
      assertExactRamp(records.filter((r) => r.type === 23).map((r) => r.length - TLS12_OVERHEAD), data.length);
    } finally {
      upstream.close();
    }
  });

  test("TLS 1.3: every record (handshake flight included) stays within its phase limit", async () => {
    const data = payload(1024 * 1024, 3);
    const { plain, records } = await run(true, writeThenEnd(data), { minVersion: "TLSv1.3" });
    assert.equal(sha(plain), sha(data));
    const enc = records.filter((r) => r.type === 23).map((r) => r.length - TLS13_OVERHEAD);
    for (let i = 0; i < enc.length; i++) assert.ok(enc[i]! <= drsRecordLimit(i), `record ${i + 1}: ${enc[i]}`);
    assert.ok(enc.slice(0, 40).every((n) => n <= DRS_SMALL_RECORD));
    assert.ok(enc.some((n) => n === DRS_FULL_RECORD), "full-size records once the ramp is over");
  });

  test("the record size phases are 40 x 1369, 20 x 4096, then 16384", () => {
    assert.equal(drsRecordLimit(0), 1369);
    assert.equal(drsRecordLimit(39), 1369);
    assert.equal(drsRecordLimit(40), 4096);
    assert.equal(drsRecordLimit(59), 4096);
    assert.equal(drsRecordLimit(60), DRS_FULL_RECORD);
    assert.equal(drsRecordLimit(Number.MAX_SAFE_INTEGER), DRS_FULL_RECORD);
  });
});

describe("DRS write path", () => {
  test("once saturated, the socket's own write path is back (no per-write cost for the rest of the connection)", async () => {
    const cert = await selfSigned("gw.test");
    const server = tls.createServer({ cert: cert.cert, key: cert.key });
    const checked = new Promise<{ before: boolean; after: boolean; records: number }>((resolve) => {
      server.once("secureConnection", (t: tls.TLSSocket) => {
        const h = applyDrs(t);
        const before = Object.hasOwn(t, "_write");
        t.write(Buffer.alloc(300_000, 1), () => {
          resolve({ before, after: Object.hasOwn(t, "_write") || Object.hasOwn(t, "_writev"), records: h.records });
          t.end();
        });
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as net.AddressInfo).port;
    const c = tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false });
    c.on("data", () => {});
    c.on("error", () => {});
    const r = await checked;
    c.destroy();
    server.close();
    assert.equal(r.before, true, "DRS interposes during the ramp");
    assert.equal(r.after, false, "and removes itself afterwards");
    assert.equal(r.records, 60, "the counter saturates at 60");
  });
});
