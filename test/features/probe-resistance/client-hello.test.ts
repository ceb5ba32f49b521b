import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import fc from "fast-check";
import { DEFAULT_MAX_HELLO_BYTES, parseClientHello } from "../../../src/features/probe-resistance/client-hello.js";
import { captureClientHello, captureOpensslHello } from "./fixtures.js";

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function ext(type: number, body: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(body.length), body]);
}

function sniExt(...names: Array<string | Buffer>): Buffer {
  const entries = names.map((n) => {
    const raw = typeof n === "string" ? Buffer.from(n, "latin1") : n;
    return Buffer.concat([Buffer.from([0]), u16(raw.length), raw]);
  });
  const list = Buffer.concat(entries);
  return ext(0, Buffer.concat([u16(list.length), list]));
}

interface HelloParts {
  exts?: Buffer[];
  noExtensions?: boolean;
  sidLen?: number;
  suitesLen?: number;
  compLen?: number;
  extLenDelta?: number;
  msgType?: number;
}

/** A ClientHello handshake message (type, 24-bit length, body). */
function helloMessage(p: HelloParts = {}): Buffer {
  const sidLen = p.sidLen ?? 32;
  const suitesLen = p.suitesLen ?? 4;
  const compLen = p.compLen ?? 1;
  const exts = Buffer.concat(p.exts ?? []);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]),
    Buffer.alloc(32, 0xaa),
    Buffer.from([sidLen]),
    Buffer.alloc(sidLen, 0xbb),
    u16(suitesLen),
    Buffer.alloc(suitesLen, 0x13),
    Buffer.from([compLen]),
    Buffer.alloc(compLen, 0),
    p.noExtensions ? Buffer.alloc(0) : Buffer.concat([u16(exts.length + (p.extLenDelta ?? 0)), exts]),
  ]);
  return Buffer.concat([Buffer.from([p.msgType ?? 1, 0, body.length >> 8, body.length & 0xff]), body]);
}

/** Frames a handshake stream into records of at most `size` bytes. */
function records(hs: Buffer, size = 16_384, type = 0x16): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < hs.length; i += size) {
    const frag = hs.subarray(i, i + size);
    out.push(Buffer.from([type, 0x03, 0x01]), u16(frag.length), frag);
  }
  return Buffer.concat(out);
}

/** The handshake stream inside a (possibly multi-record) first flight. */
function unframe(flight: Buffer): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i + 5 <= flight.length; ) {
    const len = flight.readUInt16BE(i + 3);
    if (flight[i] === 0x16) out.push(flight.subarray(i + 5, i + 5 + len));
    i += 5 + len;
  }
  return Buffer.concat(out);
}

describe("ClientHello parser", () => {
  let nodeSni: Buffer;
  let nodeNoSni: Buffer;
  let opensslSni: Buffer;
  let opensslNoSni: Buffer;

  before(async () => {
    [nodeSni, nodeNoSni, opensslSni, opensslNoSni] = await Promise.all([
      captureClientHello("Www.Example.TEST"),
      captureClientHello(undefined),
      captureOpensslHello("api.example.test"),
      captureOpensslHello(undefined),
    ]);
  });

  test("real ClientHellos from Node and the openssl CLI: the SNI, lower-cased, or its absence", () => {
    assert.deepEqual(parseClientHello(nodeSni), { kind: "tls-with-sni", serverName: "www.example.test", recordBytes: nodeSni.length });
    assert.deepEqual(parseClientHello(opensslSni), { kind: "tls-with-sni", serverName: "api.example.test", recordBytes: opensslSni.length });
    assert.equal(parseClientHello(nodeNoSni).kind, "tls-no-sni");
    assert.equal(parseClientHello(opensslNoSni).kind, "tls-no-sni");
  });

  test("every proper prefix of a real ClientHello needs more bytes", () => {
    for (const hello of [nodeSni, opensslSni]) {
      for (let n = 0; n < hello.length; n++) {
        assert.equal(parseClientHello(hello.subarray(0, n)).kind, "need-more-bytes", `prefix ${n}`);
      }
    }
  });

  test("a ClientHello split across many records is reassembled", () => {
    for (const size of [1, 7, 100, 512]) {
      const split = records(unframe(opensslSni), size);
      assert.deepEqual(parseClientHello(split), { kind: "tls-with-sni", serverName: "api.example.test", recordBytes: split.length });
      // A prefix ending inside any record is still undecided.
      assert.equal(parseClientHello(split.subarray(0, split.length - 1)).kind, "need-more-bytes");
    }
  });

  test("bytes after the ClientHello (early data, a second record) do not change the verdict", () => {
    const withTail = Buffer.concat([nodeSni, Buffer.from([0x17, 0x03, 0x03, 0x00, 0x02, 1, 2])]);
    assert.deepEqual(parseClientHello(withTail), { kind: "tls-with-sni", serverName: "www.example.test", recordBytes: nodeSni.length });
  });

  test("synthetic hellos: SNI found among other extensions; no extensions at all is no SNI", () => {
    const h = records(helloMessage({ exts: [ext(0x000a, Buffer.from([0, 2, 0, 0x1d])), sniExt("a.example.test"), ext(0x002b, Buffer.from([2, 3, 4]))] }));
    assert.equal((parseClientHello(h) as { serverName: string }).serverName, "a.example.test");
    assert.equal(parseClientHello(records(helloMessage({ noExtensions: true }))).kind, "tls-no-sni");
    assert.equal(parseClientHello(records(helloMessage({ exts: [ext(0x000a, Buffer.from([0, 2, 0, 0x1d]))] }))).kind, "tls-no-sni");
    // A trailing dot names the same host.
    assert.equal((parseClientHello(records(helloMessage({ exts: [sniExt("b.example.test.")] }))) as { serverName: string }).serverName, "b.example.test");
  });

  test("not TLS: anything that does not start like a handshake record", () => {
    for (const s of [Buffer.from("GET / HTTP/1.1\r\n"), Buffer.from([0x80, 0x2e, 0x01]), Buffer.from([0x16, 0x01]), Buffer.from([0x16, 0x03, 0x09]), Buffer.from("\x17\x03\x03")]) {
      assert.equal(parseClientHello(s).kind, "not-tls", s.toString("hex"));
    }
  });

  const MALFORMED: Array<[string, Buffer]> = [
    ["first message is not a ClientHello", records(helloMessage({ msgType: 2 }))],
    ["empty handshake record", Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])],
    ["record longer than 2^14", Buffer.from([0x16, 0x03, 0x01, 0x40, 0x01])],
    ["application data inside the ClientHello", Buffer.concat([records(helloMessage().subarray(0, 10)), records(helloMessage().subarray(10), 16_384, 0x17)])],
    ["session id longer than 32", records(helloMessage({ sidLen: 33 }))],
    ["odd cipher suites length", records(helloMessage({ suitesLen: 3 }))],
    ["no compression method", records(helloMessage({ compLen: 0 }))],
    ["extensions length too long", records(helloMessage({ exts: [sniExt("a.test")], extLenDelta: 1 }))],
    ["extensions length too short", records(helloMessage({ exts: [sniExt("a.test")], extLenDelta: -1 }))],
    ["duplicate extension", records(helloMessage({ exts: [sniExt("a.test"), sniExt("b.test")] }))],
    ["two host names", records(helloMessage({ exts: [sniExt("a.test", "b.test")] }))],
    ["empty host name", records(helloMessage({ exts: [sniExt("")] }))],
    ["host name with a slash", records(helloMessage({ exts: [sniExt("a/b.test")] }))],
    ["host name with a NUL", records(helloMessage({ exts: [sniExt(Buffer.from("a\0.test"))] }))],
    ["non-ASCII host name", records(helloMessage({ exts: [sniExt(Buffer.from("bücher.test"))] }))],
    ["empty server_name list", records(helloMessage({ exts: [ext(0, u16(0))] }))],
    ["ClientHello longer than the bound", Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0xff, 0xff, 0xff])],
  ];
  for (const [name, bytes] of MALFORMED) {
    test(`malformed: ${name}`, () => {
      assert.equal(parseClientHello(bytes).kind, "malformed");
    });
  }

  test("a stream of valid-looking records never makes the parser wait past its byte bound", () => {
    // 1-byte records of a hello that claims 64 KiB: each record is valid, the total is not.
    const claim = Buffer.from([0x01, 0x00, 0xff, 0xff]);
    const stream = records(Buffer.concat([claim, Buffer.alloc(20_000, 1)]), 1);
    assert.equal(parseClientHello(stream.subarray(0, 2_000)).kind, "malformed");
    // A hello that fits the default bound but not a smaller one.
    assert.equal(parseClientHello(nodeSni, nodeSni.length - 1).kind, "malformed");
  });

  test("fuzz: arbitrary bytes never throw, and at the bound the answer is final", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (arr, tlsLike) => {
        const b = Buffer.from(arr);
        if (tlsLike && b.length >= 3) b.set([0x16, 0x03, 0x01]);
        const v = parseClientHello(b, 512);
        if (b.length >= 512) assert.notEqual(v.kind, "need-more-bytes");
      }),
      { numRuns: 3_000, seed: 4242 },
    );
  });

  test("fuzz: single-byte corruptions of a real ClientHello never throw", () => {
    const base = opensslSni;
    for (let i = 0; i < base.length; i++) {
      for (const x of [0x00, 0xff, base[i]! ^ 0x01]) {
        const b = Buffer.from(base);
        b[i] = x;
        const v = parseClientHello(b, DEFAULT_MAX_HELLO_BYTES);
        assert.ok(["tls-with-sni", "tls-no-sni", "malformed", "not-tls", "need-more-bytes"].includes(v.kind));
      }
    }
  });
});
