/** The identity of an mTLS client, read from its verified certificate. */
import { createHash, type X509Certificate } from "node:crypto";
import { createRequire } from "node:module";
import type * as Asn1Schema from "@peculiar/asn1-schema";
import type * as Asn1X509 from "@peculiar/asn1-x509";
import type { Certificate, Extension } from "@peculiar/asn1-x509";
import { extensionText } from "./extension-text.js";
import { identityText } from "./identity-text.js";

/**
 * The identity of an mTLS client, read from its (already verified) certificate.
 * The certificate's DER is parsed with @peculiar/asn1-x509 rather than from
 * Node's printable subject string, whose escaping makes `CN=a, O=b` and a CN
 * of "a, O=b" hard to tell apart.
 *
 * Every source fails closed: a missing, duplicated, ambiguous or malformed
 * value gives `undefined` (the caller rejects the client), never an exception.
 */
export type IdentitySource = { kind: "cn" } | { kind: "san_uri" } | { kind: "oid"; oid: string };

const OID_COMMON_NAME = "2.5.4.3";

// The X.509 parser (several MB in memory) is loaded with the first client
// certificate, not with the gateway: listeners without mTLS never need it.
// These packages are CommonJS, so `require` loads them synchronously (and caches them).
const load = createRequire(import.meta.url);
const schema = (): typeof Asn1Schema => load("@peculiar/asn1-schema") as typeof Asn1Schema;
const x509 = (): typeof Asn1X509 => load("@peculiar/asn1-x509") as typeof Asn1X509;

function parseCertificate(cert: X509Certificate): Certificate | undefined {
  try {
    return schema().AsnConvert.parse(cert.raw, x509().Certificate);
  } catch {
    return undefined;
  }
}

/** The subject's one CN; several CNs are ambiguous and give undefined. */
function commonName(c: Certificate): string | undefined {
  const values = c.tbsCertificate.subject.flatMap((rdn) => rdn.filter((atv) => atv.type === OID_COMMON_NAME));
  if (values.length !== 1) return undefined;
  const v = values[0]!.value;
  // Only the string types; an ANY value (anyValue) is not a name.
  const s = v.utf8String ?? v.printableString ?? v.ia5String ?? v.bmpString ?? v.universalString ?? v.teletexString;
  return identityText(s);
}

/** Extensions with this OID; RFC 5280 forbids more than one, so more than one is treated as none. */
function onlyExtension(c: Certificate, oid: string): Extension | undefined {
  const found = (c.tbsCertificate.extensions ?? []).filter((e) => e.extnID === oid);
  return found.length === 1 ? found[0] : undefined;
}

/** The one URI subjectAltName (SPIFFE requires exactly one); several are ambiguous. */
function sanUri(c: Certificate): string | undefined {
  const { SubjectAlternativeName, id_ce_subjectAltName } = x509();
  const ext = onlyExtension(c, id_ce_subjectAltName);
  if (!ext) return undefined;
  const names = schema().AsnConvert.parse(ext.extnValue, SubjectAlternativeName);
  const uris = names.filter((n) => n.uniformResourceIdentifier !== undefined);
  if (uris.length !== 1) return undefined;
  return identityText(uris[0]!.uniformResourceIdentifier);
}

function customOid(c: Certificate, oid: string): string | undefined {
  const ext = onlyExtension(c, oid);
  if (!ext) return undefined;
  return identityText(extensionText(new Uint8Array(ext.extnValue.buffer)));
}

/** The client's identity by `source`, or undefined when the certificate does not carry exactly one usable value. */
export function identityFromCertificate(cert: X509Certificate, source: IdentitySource): string | undefined {
  try {
    const c = parseCertificate(cert);
    if (!c) return undefined;
    switch (source.kind) {
      case "cn":
        return commonName(c);
      case "san_uri":
        return sanUri(c);
      case "oid":
        return /^[0-2](\.[0-9]+)+$/.test(source.oid) ? customOid(c, source.oid) : undefined;
      default:
        return undefined;
    }
  } catch {
    // A certificate the TLS stack accepted but whose extension bodies do not parse.
    return undefined;
  }
}

/** SHA-256 of the certificate's DER, lower-case hex without colons (as logged in key_fingerprint). */
export function certificateFingerprint(cert: X509Certificate): string {
  return createHash("sha256").update(cert.raw).digest("hex");
}
