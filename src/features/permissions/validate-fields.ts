/** The check that a permission's fields are well formed and canonical. */
import { canonicalCidr } from "../../net/cidr.js";
import { isCanonicalHostPattern } from "./host-pattern.js";
import { LIMITS, type PermissionFields } from "./permission.js";
import { isValidPortRange } from "./port-range.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const KEY_ID = /^[0-9a-f]{16}$/;

const bytes = (s: string) => Buffer.byteLength(s, "utf8");

/** The first problem with a permission's fields (naming the field), or undefined when they are well-formed and canonical. */
export function validateFields(f: PermissionFields): string | undefined {
  if (!UUID.test(f.id)) return "id: must be a lower-case UUID";
  if (f.identity.length === 0 || bytes(f.identity) > LIMITS.identityBytes) return `identity: must be 1..${LIMITS.identityBytes} bytes`;
  if (!isCanonicalHostPattern(f.hostPattern)) return "dest: must be a host name, *.domain, * or an IP address (lower case, no trailing dot)";
  if (!isValidPortRange(f.portMin, f.portMax)) return "ports: must be a port or an inclusive range within 1-65535";
  if (f.cidr !== null && canonicalCidr(f.cidr) !== f.cidr) return "cidr: must be a network in canonical form such as 10.0.0.0/8";
  if (f.expiresAtUs <= f.notBeforeUs) return "expires: must be after not-before";
  if (bytes(f.createdBy) > LIMITS.createdByBytes) return `created_by: must be at most ${LIMITS.createdByBytes} bytes`;
  if (!KEY_ID.test(f.keyId)) return "key_id: must be 16 hex digits";
  return undefined;
}
