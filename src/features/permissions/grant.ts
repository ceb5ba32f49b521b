/** Grants: a permission request in the forms people type, validated and signed into a row. */
import { randomUUID } from "node:crypto";
import { InvalidArgumentError } from "../../core/errors.js";
import { cidrAt } from "../../net/cidr.js";
import { canonicalHostPattern } from "./host-pattern.js";
import type { SigningKey } from "./signing-keys.js";
import type { PermissionFields } from "./permission.js";
import { parsePortRange } from "./port-range.js";
import { signPermission } from "./signature.js";
import { validateFields } from "./validate-fields.js";

/** What the authority asks for, in the forms people type. */
export interface GrantRequest {
  readonly identity: string;
  /** Host pattern; normalised (lower case, no trailing dot) before signing. */
  readonly dest: string;
  /** "443" or "8000-8100". */
  readonly ports: string;
  readonly cidr?: string;
  /** Wall-clock milliseconds since the epoch (fractions are dropped: rows keep whole milliseconds). */
  readonly notBeforeMs: number;
  readonly expiresMs: number;
  readonly createdBy: string;
  readonly key: SigningKey;
  /** Row id; a random UUID by default. */
  readonly id?: string;
}

export interface SignedPermission {
  readonly fields: PermissionFields;
  readonly signature: Buffer;
}

/** Normalises, validates and signs a grant; throws InvalidArgumentError naming the bad field. */
export function signGrant(r: GrantRequest): SignedPermission {
  const hostPattern = canonicalHostPattern(r.dest);
  if (hostPattern === undefined) throw new InvalidArgumentError("dest", `not a host, *.domain, * or IP address: ${JSON.stringify(r.dest)}`);
  const ports = parsePortRange(r.ports);
  if (ports === undefined) throw new InvalidArgumentError("ports", `not a port or range within 1-65535: ${JSON.stringify(r.ports)}`);
  let cidr: string | null = null;
  if (r.cidr !== undefined) cidr = cidrAt("cidr", r.cidr).text;
  for (const [name, v] of [["not-before", r.notBeforeMs], ["expires", r.expiresMs]] as const) {
    if (!Number.isFinite(v) || Math.abs(v) > 8.64e15) throw new InvalidArgumentError(name, "must be a valid time");
  }
  const fields: PermissionFields = {
    id: (r.id ?? randomUUID()).toLowerCase(),
    identity: r.identity,
    hostPattern,
    portMin: ports.min,
    portMax: ports.max,
    cidr,
    notBeforeUs: BigInt(Math.floor(r.notBeforeMs)) * 1000n,
    expiresAtUs: BigInt(Math.floor(r.expiresMs)) * 1000n,
    createdBy: r.createdBy,
    keyId: r.key.keyId,
  };
  const problem = validateFields(fields);
  if (problem !== undefined) {
    const [param, ...rest] = problem.split(": ");
    throw new InvalidArgumentError(param!, rest.join(": "));
  }
  return { fields, signature: signPermission(fields, r.key) };
}
