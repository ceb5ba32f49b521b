/** The canonical byte encoding of a permission: the message the authority signs. */
import type { PermissionFields } from "./permission.js";

/**
 * The canonical byte encoding of a permission, the message the authority
 * signs. Deterministic and unambiguous by construction:
 *
 *   "portcullis-permission-v1" 0x00            domain separation and version
 *   then, for each field in this fixed order:
 *     u32 big-endian byte length, then the UTF-8 bytes
 *     (an absent optional field is the length 0xFFFFFFFF and no bytes)
 *
 *   id, identity, host_pattern, port_min, port_max, cidr, not_before,
 *   expires_at, created_by, key_id
 *
 * Numbers are written as base-10 ASCII without sign for ports and with a
 * leading "-" only for negative times; times are integer microseconds since
 * the Unix epoch. Length prefixes (rather than separators) mean no choice of
 * field contents can make two different rows encode alike.
 */
const DOMAIN = Buffer.from("portcullis-permission-v1\0", "utf8");
const ABSENT = 0xffffffff;

function field(value: string | null): Buffer[] {
  const len = Buffer.alloc(4);
  if (value === null) {
    len.writeUInt32BE(ABSENT);
    return [len];
  }
  const bytes = Buffer.from(value, "utf8");
  len.writeUInt32BE(bytes.length);
  return [len, bytes];
}

export function encodePermission(p: PermissionFields): Buffer {
  const parts: Buffer[] = [DOMAIN];
  for (const v of [
    p.id,
    p.identity,
    p.hostPattern,
    String(p.portMin),
    String(p.portMax),
    p.cidr,
    p.notBeforeUs.toString(10),
    p.expiresAtUs.toString(10),
    p.createdBy,
    p.keyId,
  ]) {
    parts.push(...field(v));
  }
  return Buffer.concat(parts);
}
