/**
 * A destination permission as the authority signs it: every column of a row
 * in the permission table except the signature itself. Times are integer
 * microseconds since the Unix epoch, the precision PostgreSQL keeps, so a
 * value read back from the table is exactly the value that was signed.
 */
export interface PermissionFields {
  /** Row id (a UUID, lower-case), chosen by the authority so the signature binds it. */
  readonly id: string;
  /** Who may connect: the identity taken from the client certificate. */
  readonly identity: string;
  /** Destination host pattern: "api.example.com", "*.example.com" or "*". */
  readonly hostPattern: string;
  readonly portMin: number;
  readonly portMax: number;
  /** Optional network the resolved destination address must fall in ("10.0.0.0/8"), or null. */
  readonly cidr: string | null;
  readonly notBeforeUs: bigint;
  readonly expiresAtUs: bigint;
  /** Who granted it (free text, for the audit trail). */
  readonly createdBy: string;
  /** Id of the key that signed it (see signing-keys.ts). */
  readonly keyId: string;
}

/** A row as stored: the signed fields and the signature (null when unsigned). */
export interface PermissionRow extends Omit<PermissionFields, "keyId" | "notBeforeUs" | "expiresAtUs"> {
  readonly keyId: string | null;
  /** Null when the stored time is not a finite timestamp. */
  readonly notBeforeUs: bigint | null;
  readonly expiresAtUs: bigint | null;
  readonly signature: Buffer | null;
}

/** Why a row grants nothing. */
export type RowRejection = "unsigned" | "malformed" | "unknown_key" | "bad_signature" | "expired" | "not_yet_valid";

export const ROW_REJECTIONS: readonly RowRejection[] = [
  "unsigned",
  "malformed",
  "unknown_key",
  "bad_signature",
  "expired",
  "not_yet_valid",
];

/** Bounds shared by validation, the SQL CHECK constraints and the NOTIFY payload size. */
export const LIMITS = {
  identityBytes: 1024,
  createdByBytes: 256,
  keyIdBytes: 64,
} as const;
