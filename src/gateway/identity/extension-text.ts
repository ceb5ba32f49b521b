/**
 * The text a custom certificate extension carries. Issuers encode such an
 * identity either as a DER string (UTF8String, IA5String, PrintableString),
 * as a DER OCTET STRING holding the text, or as the bare text bytes as the
 * extension value. Every DER string tag is a control byte, so bare printable
 * text can never be mistaken for DER, and DER of any other type decodes to
 * bytes that the identity check rejects.
 */
import * as asn1js from "asn1js";

const UNIVERSAL = 1;
const TAG_UTF8 = 12;
const TAG_PRINTABLE = 19;
const TAG_IA5 = 22;
const TAG_OCTET = 4;

const ASCII_ONLY = new Set([TAG_PRINTABLE, TAG_IA5]);
const TEXT_TAGS = new Set([TAG_UTF8, TAG_PRINTABLE, TAG_IA5, TAG_OCTET]);

function utf8(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** The DER string's contents, or undefined when `der` is not exactly one primitive text value. */
function derString(der: Uint8Array): Uint8Array | undefined {
  const parsed = asn1js.fromBER(der);
  if (parsed.offset !== der.byteLength) return undefined;
  const v = parsed.result;
  const id = v.idBlock;
  if (id.tagClass !== UNIVERSAL || id.isConstructed || !TEXT_TAGS.has(id.tagNumber)) return undefined;
  const bytes = (v.valueBlock as { valueHexView?: Uint8Array }).valueHexView;
  if (!bytes) return undefined;
  if (ASCII_ONLY.has(id.tagNumber) && bytes.some((b) => b > 0x7f)) return undefined;
  return bytes;
}

/** The text of an extension value (the contents of extnValue), or undefined. */
export function extensionText(value: Uint8Array): string | undefined {
  if (value.byteLength === 0) return undefined;
  return utf8(derString(value) ?? value);
}
