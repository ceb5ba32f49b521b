import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { rm } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { certificateFingerprint, identityFromCertificate } from "../../../src/gateway/identity/client-cert.js";
import { extensionText } from "../../../src/gateway/identity/extension-text.js";
import { identityText } from "../../../src/gateway/identity/identity-text.js";
import { makeTestPki, type ClientCertOptions, type TestPki } from "../../helpers/certs.js";

const run = promisify(execFile);
const OID = "1.3.6.1.4.1.55555.7.1";

describe("identity from a client certificate (openssl-made)", () => {
  let pki: TestPki;
  const cert = async (o: ClientCertOptions): Promise<X509Certificate> => new X509Certificate((await pki.clientCert(o)).cert);

  before(async () => {
    pki = await makeTestPki();
  });
  after(() => rm(pki.dir, { recursive: true, force: true }));

  test("the helper's certificates chain to its CA", async () => {
    const ca = new X509Certificate(pki.caCert);
    assert.ok((await cert({ cn: "alice" })).checkIssued(ca));
    assert.ok(new X509Certificate(pki.serverCert).checkHost("localhost"));
    assert.ok(new X509Certificate(pki.serverCert).checkIP("127.0.0.1"));
  });

  test("cn: the subject's common name, exactly", async () => {
    assert.equal(identityFromCertificate(await cert({ cn: "alice" }), { kind: "cn" }), "alice");
    // Text that would confuse a parser of Node's printable subject string is taken literally.
    assert.equal(identityFromCertificate(await cert({ cn: "eve, O=Admins" }), { kind: "cn" }), "eve, O=Admins");
    assert.equal(identityFromCertificate(await cert({ cn: "agent/7+x" }), { kind: "cn" }), "agent/7+x");
    assert.equal(identityFromCertificate(await cert({ cn: "Zoë" }), { kind: "cn" }), "Zoë");
    assert.equal(identityFromCertificate(await cert({ sanUri: "spiffe://enclave/a" }), { kind: "cn" }), undefined);
  });

  test("san_uri: the one URI subjectAltName", async () => {
    const c = await cert({ cn: "alice", sanUri: "spiffe://enclave/agent-7" });
    assert.equal(identityFromCertificate(c, { kind: "san_uri" }), "spiffe://enclave/agent-7");
    assert.equal(identityFromCertificate(await cert({ cn: "alice" }), { kind: "san_uri" }), undefined);
    // Two URIs are ambiguous (openssl's config syntax lists a second one after a comma).
    const two = await cert({ cn: "alice", sanUri: "spiffe://enclave/a, URI:spiffe://enclave/b" });
    assert.equal(two.subjectAltName, "URI:spiffe://enclave/a, URI:spiffe://enclave/b");
    assert.equal(identityFromCertificate(two, { kind: "san_uri" }), undefined);
  });

  test("oid: a custom extension in each encoding issuers use", async () => {
    for (const encoding of ["utf8", "ia5", "printable", "octet", "raw"] as const) {
      const c = await cert({ cn: "alice", customOid: { oid: OID, value: "team-blue", encoding } });
      assert.equal(identityFromCertificate(c, { kind: "oid", oid: OID }), "team-blue", encoding);
    }
    const c = await cert({ cn: "alice", customOid: { oid: OID, value: "team-blue" } });
    assert.equal(identityFromCertificate(c, { kind: "oid", oid: "1.3.6.1.4.1.55555.7.2" }), undefined);
    assert.equal(identityFromCertificate(c, { kind: "oid", oid: "not an oid" }), undefined);
    assert.equal(identityFromCertificate(c, { kind: "cn" }), "alice");
  });

  test("oid: a value that is not one line of text is no identity", async () => {
    const bin = await cert({ cn: "alice", customOid: { oid: OID, value: "a\u0001b", encoding: "raw" } });
    assert.equal(identityFromCertificate(bin, { kind: "oid", oid: OID }), undefined);
    const nl = await cert({ cn: "alice", customOid: { oid: OID, value: "a\nevent=auth", encoding: "octet" } });
    assert.equal(identityFromCertificate(nl, { kind: "oid", oid: OID }), undefined);
  });

  test("fingerprint: SHA-256 of the DER, lower-case hex without colons, as openssl prints it", async () => {
    const issued = await pki.clientCert({ cn: "alice" });
    const c = new X509Certificate(issued.cert);
    const fp = certificateFingerprint(c);
    assert.match(fp, /^[0-9a-f]{64}$/);
    const { stdout } = await run("openssl", ["x509", "-in", issued.certPath, "-noout", "-fingerprint", "-sha256"]);
    assert.equal(fp, stdout.trim().split("=")[1]!.replaceAll(":", "").toLowerCase());
    assert.notEqual(fp, certificateFingerprint(await cert({ cn: "alice" })));
  });

  test("an unparseable certificate or unknown source gives undefined, not an exception", async () => {
    const junk = { raw: Buffer.from("not a certificate") } as unknown as X509Certificate;
    for (const source of [{ kind: "cn" }, { kind: "san_uri" }, { kind: "oid", oid: OID }] as const) {
      assert.equal(identityFromCertificate(junk, source), undefined);
    }
    const good = await cert({ cn: "alice" });
    assert.equal(identityFromCertificate(good, { kind: "subject" } as never), undefined);
  });
});

describe("extension values", () => {
  const hex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, "hex"));
  test("DER strings and bare text", () => {
    assert.equal(extensionText(hex("0c03616263")), "abc"); // UTF8String
    assert.equal(extensionText(hex("1603616263")), "abc"); // IA5String
    assert.equal(extensionText(hex("1303616263")), "abc"); // PrintableString
    assert.equal(extensionText(hex("0403616263")), "abc"); // OCTET STRING
    assert.equal(extensionText(new TextEncoder().encode("team-blue")), "team-blue");
  });
  test("anything else yields no identity", () => {
    const id = (h: string): string | undefined => identityText(extensionText(hex(h)));
    assert.equal(id("0203010203"), undefined); // INTEGER
    assert.equal(id("0c0561"), undefined); // truncated UTF8String
    assert.equal(id("0c03616263ff"), undefined); // trailing garbage
    assert.equal(id("1603c3a9"), undefined); // IA5String is ASCII only
    assert.equal(id("0c02c328"), undefined); // invalid UTF-8
    assert.equal(id("3005" + "0c03616263"), undefined); // a SEQUENCE holding a string
    assert.equal(id(""), undefined);
  });
});

describe("identity text", () => {
  test("one line of visible text, bounded", () => {
    assert.equal(identityText("spiffe://enclave/agent-7"), "spiffe://enclave/agent-7");
    for (const bad of ["", " alice", "alice ", "a\nb", "a\u0000b", "a\u202eb", "a\u2028b", "\ud800", "x".repeat(1025)]) {
      assert.equal(identityText(bad), undefined, JSON.stringify(bad));
    }
    assert.equal(identityText("x".repeat(1024))?.length, 1024);
  });
});
