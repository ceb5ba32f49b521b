import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import fc from "fast-check";
import { encodePermission } from "../../../src/features/permissions/canonical.js";
import { signGrant } from "../../../src/features/permissions/grant.js";
import { generateSigningKey, keyIdOf, Keyring, parsePrivateKey, parsePublicKey, privateKeyPem, publicKeyPem } from "../../../src/features/permissions/signing-keys.js";
import type { PermissionFields, PermissionRow } from "../../../src/features/permissions/permission.js";
import { checkIntegrity, checkRow, signPermission, timeState, verifySignature } from "../../../src/features/permissions/signature.js";

const NOW = 1_800_000_000_000;
const key = generateSigningKey();

function fields(over: Partial<PermissionFields> = {}): PermissionFields {
  return {
    id: "6f1d1b5e-0a6c-4a8e-9a53-0d3f0d9b1a11",
    identity: "spiffe://enclave/agent-7",
    hostPattern: "*.example.com",
    portMin: 443,
    portMax: 443,
    cidr: null,
    notBeforeUs: BigInt(NOW - 1000) * 1000n,
    expiresAtUs: BigInt(NOW + 60_000) * 1000n,
    createdBy: "authority",
    keyId: key.keyId,
    ...over,
  };
}

function row(f: PermissionFields, signature: Buffer | null): PermissionRow {
  return { ...f, signature };
}

describe("canonical encoding", () => {
  test("starts with the versioned domain tag and length-prefixes each field in order", () => {
    const enc = encodePermission(fields());
    const tag = Buffer.from("portcullis-permission-v1\0");
    assert.deepEqual(enc.subarray(0, tag.length), tag);
    const read: (string | null)[] = [];
    let o = tag.length;
    while (o < enc.length) {
      const len = enc.readUInt32BE(o);
      o += 4;
      if (len === 0xffffffff) {
        read.push(null);
        continue;
      }
      read.push(enc.subarray(o, o + len).toString("utf8"));
      o += len;
    }
    const f = fields();
    assert.deepEqual(read, [f.id, f.identity, f.hostPattern, "443", "443", null, String(f.notBeforeUs), String(f.expiresAtUs), f.createdBy, f.keyId]);
  });

  test("is deterministic and injective: moving bytes between fields or null vs empty changes the encoding", () => {
    assert.deepEqual(encodePermission(fields()), encodePermission(fields()));
    assert.notDeepEqual(encodePermission(fields({ identity: "ab", createdBy: "c" })), encodePermission(fields({ identity: "a", createdBy: "bc" })));
    assert.notDeepEqual(encodePermission(fields({ cidr: null })), encodePermission(fields({ cidr: "" })));
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), fc.string(), (a, b, c, d) => {
        const x = encodePermission(fields({ identity: a, createdBy: b }));
        const y = encodePermission(fields({ identity: c, createdBy: d }));
        return (a === c && b === d) === x.equals(y);
      }),
      { numRuns: 300 },
    );
  });
});

describe("keys", () => {
  test("key id is the first 16 hex digits of SHA-256 of the raw public key, and PEM round-trips", () => {
    const raw = Buffer.from(key.publicKey.export({ format: "jwk" }).x!, "base64url");
    assert.equal(raw.length, 32);
    assert.equal(key.keyId, createHash("sha256").update(raw).digest("hex").slice(0, 16));
    const again = parsePrivateKey(privateKeyPem(key));
    assert.equal(again.keyId, key.keyId);
    assert.equal(keyIdOf(parsePublicKey(publicKeyPem(key.publicKey))), key.keyId);
    assert.notEqual(generateSigningKey().keyId, key.keyId);
  });

  test("refuses keys that are not Ed25519, and private keys where a public key is expected", () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
    assert.throws(() => parsePublicKey(rsa.publicKey.export({ format: "pem", type: "spki" })), /Ed25519/);
    assert.throws(() => parsePrivateKey(rsa.privateKey.export({ format: "pem", type: "pkcs8" })), /Ed25519/);
    assert.throws(() => parsePublicKey(privateKeyPem(key)), /private key/);
    assert.throws(() => parsePublicKey("garbage"), /not a PEM public key/);
  });
});

describe("signatures", () => {
  test("a signed row verifies with the signer's key and grants within its window", () => {
    const f = fields();
    const sig = signPermission(f, key);
    assert.equal(sig.length, 64);
    assert.equal(verifySignature(f, sig, key.publicKey), true);
    assert.deepEqual(checkRow(row(f, sig), new Keyring([key.publicKey]), NOW), { ok: true, fields: f });
  });

  test("changing any signed field breaks the signature", () => {
    const f = fields({ cidr: "10.0.0.0/8" });
    const sig = signPermission(f, key);
    const keyring = new Keyring([key.publicKey]);
    const changes: Partial<PermissionFields>[] = [
      { id: "6f1d1b5e-0a6c-4a8e-9a53-0d3f0d9b1a12" },
      { identity: "spiffe://enclave/agent-8" },
      { hostPattern: "*.example.org" },
      { portMin: 442 },
      { portMax: 444 },
      { cidr: "10.0.0.0/7" },
      { cidr: null },
      { notBeforeUs: f.notBeforeUs - 1n },
      { expiresAtUs: f.expiresAtUs + 1n },
      { createdBy: "someone else" },
    ];
    for (const c of changes) {
      assert.deepEqual(checkIntegrity(row({ ...f, ...c }, sig), keyring), { ok: false, reason: "bad_signature" }, JSON.stringify(c, (_, v) => (typeof v === "bigint" ? String(v) : v)));
    }
  });

  test("unsigned, unknown key, malformed and wrong-length signatures grant nothing", () => {
    const f = fields();
    const sig = signPermission(f, key);
    const keyring = new Keyring([key.publicKey]);
    assert.deepEqual(checkIntegrity(row(f, null), keyring), { ok: false, reason: "unsigned" });
    assert.deepEqual(checkIntegrity({ ...row(f, sig), keyId: null }, keyring), { ok: false, reason: "unsigned" });
    assert.deepEqual(checkIntegrity(row(f, sig), new Keyring([generateSigningKey().publicKey])), { ok: false, reason: "unknown_key" });
    assert.deepEqual(checkIntegrity(row(f, sig.subarray(0, 63)), keyring), { ok: false, reason: "bad_signature" });
    assert.deepEqual(checkIntegrity({ ...row(f, sig), expiresAtUs: null }, keyring), { ok: false, reason: "malformed" });
    assert.deepEqual(checkIntegrity(row({ ...f, hostPattern: "API.example.com" }, sig), keyring), { ok: false, reason: "malformed" });
    assert.deepEqual(checkIntegrity(row({ ...f, portMin: 500, portMax: 400 }, sig), keyring), { ok: false, reason: "malformed" });
  });

  test("a key id that names a trusted key but a signature made by another key is a bad signature", () => {
    const other = generateSigningKey();
    const f = fields();
    const forged = signPermission({ ...f, keyId: other.keyId }, other);
    assert.deepEqual(checkIntegrity(row(f, forged), new Keyring([key.publicKey, other.publicKey])), { ok: false, reason: "bad_signature" });
  });

  test("validity window: not_before inclusive, expires_at exclusive", () => {
    const f = fields();
    assert.equal(timeState(f, NOW - 1001), "not_yet_valid");
    assert.equal(timeState(f, NOW - 1000), "valid");
    assert.equal(timeState(f, NOW + 59_999), "valid");
    assert.equal(timeState(f, NOW + 60_000), "expired");
    const sig = signPermission(f, key);
    assert.deepEqual(checkRow(row(f, sig), new Keyring([key.publicKey]), NOW + 60_000), { ok: false, reason: "expired" });
  });

  test("signGrant normalises what people type and refuses bad fields by name", () => {
    const s = signGrant({ identity: "a", dest: "API.Example.COM.", ports: "8000-8100", cidr: "::ffff:10.1.0.0/112", notBeforeMs: NOW, expiresMs: NOW + 1, createdBy: "x", key });
    assert.equal(s.fields.hostPattern, "api.example.com");
    assert.deepEqual([s.fields.portMin, s.fields.portMax, s.fields.cidr], [8000, 8100, "10.1.0.0/16"]);
    assert.equal(verifySignature(s.fields, s.signature, key.publicKey), true);
    const base = { identity: "a", dest: "x.com", ports: "443", notBeforeMs: NOW, expiresMs: NOW + 1, createdBy: "x", key };
    assert.throws(() => signGrant({ ...base, dest: "bad host!" }), /^InvalidArgumentError: dest/);
    assert.throws(() => signGrant({ ...base, ports: "0" }), /ports/);
    assert.throws(() => signGrant({ ...base, ports: "9-8" }), /ports/);
    assert.throws(() => signGrant({ ...base, cidr: "10.0.0.0/33" }), /cidr/);
    assert.throws(() => signGrant({ ...base, cidr: "10.1.2.3/16" }), /^InvalidArgumentError: cidr: .*host bits are set; the network is 10\.1\.0\.0\/16/);
    assert.throws(() => signGrant({ ...base, expiresMs: NOW }), /expires/);
    assert.throws(() => signGrant({ ...base, identity: "" }), /identity/);
  });
});
