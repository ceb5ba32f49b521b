/** Signing and verifying a permission's canonical bytes with Ed25519. */
import { sign, verify, type KeyObject } from "node:crypto";
import { encodePermission } from "./canonical.js";
import type { Keyring, SigningKey } from "./signing-keys.js";
import type { PermissionFields, PermissionRow, RowRejection } from "./permission.js";
import { validateFields } from "./validate-fields.js";

/** Signs a permission with the authority's key; the key id in `fields` must be that key's. */
export function signPermission(fields: PermissionFields, key: SigningKey): Buffer {
  if (fields.keyId !== key.keyId) throw new Error(`key id ${fields.keyId} is not the id of the signing key (${key.keyId})`);
  return sign(null, encodePermission(fields), key.privateKey);
}

export function verifySignature(fields: PermissionFields, signature: Buffer, publicKey: KeyObject): boolean {
  if (signature.length !== 64) return false;
  try {
    return verify(null, encodePermission(fields), publicKey, signature);
  } catch {
    return false;
  }
}

export type RowCheck = { ok: true; fields: PermissionFields } | { ok: false; reason: RowRejection };

/**
 * Whether a stored row is authentic: signed, well-formed, and signed by a
 * trusted key over exactly the stored values. Time validity is separate
 * (timeState), because a cached authentic row can expire later.
 */
export function checkIntegrity(row: PermissionRow, keyring: Keyring): RowCheck {
  if (row.signature === null || row.keyId === null || row.keyId === "") return { ok: false, reason: "unsigned" };
  if (row.notBeforeUs === null || row.expiresAtUs === null) return { ok: false, reason: "malformed" };
  const fields: PermissionFields = {
    id: row.id,
    identity: row.identity,
    hostPattern: row.hostPattern,
    portMin: row.portMin,
    portMax: row.portMax,
    cidr: row.cidr,
    notBeforeUs: row.notBeforeUs,
    expiresAtUs: row.expiresAtUs,
    createdBy: row.createdBy,
    keyId: row.keyId,
  };
  if (validateFields(fields) !== undefined) return { ok: false, reason: "malformed" };
  const key = keyring.get(row.keyId);
  if (key === undefined) return { ok: false, reason: "unknown_key" };
  if (!verifySignature(fields, row.signature, key)) return { ok: false, reason: "bad_signature" };
  return { ok: true, fields };
}

/** Whether a permission is in force at wall time `nowMs`. */
export function timeState(f: Pick<PermissionFields, "notBeforeUs" | "expiresAtUs">, nowMs: number): "valid" | "expired" | "not_yet_valid" {
  const nowUs = BigInt(Math.floor(nowMs)) * 1000n;
  if (nowUs < f.notBeforeUs) return "not_yet_valid";
  if (nowUs >= f.expiresAtUs) return "expired";
  return "valid";
}

/** Integrity then time: the full answer to "does this row grant anything now?". */
export function checkRow(row: PermissionRow, keyring: Keyring, nowMs: number): RowCheck {
  const c = checkIntegrity(row, keyring);
  if (!c.ok) return c;
  const t = timeState(c.fields, nowMs);
  return t === "valid" ? c : { ok: false, reason: t };
}
