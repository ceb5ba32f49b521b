/** Signed destination permissions in PostgreSQL for connect listeners. */
export { PgPermissionPolicy, type PgPermissionPolicyOptions, type PolicyDecision, type PolicyStats, type RevokeListener } from "./pg-policy.js";
export { type PolicyLogger, silentLogger } from "./policy-logger.js";
export { Keyring, keyIdOf, generateSigningKey, loadPrivateKey, loadPublicKey, parsePrivateKey, parsePublicKey, privateKeyPem, publicKeyPem, type SigningKey } from "./signing-keys.js";
export { encodePermission } from "./canonical.js";
export { signPermission, verifySignature, checkIntegrity, checkRow, timeState, type RowCheck } from "./signature.js";
export { signGrant, type GrantRequest, type SignedPermission } from "./grant.js";
export { type PermissionFields, type PermissionRow, type RowRejection, ROW_REJECTIONS } from "./permission.js";
export { hostMatches, normalizeHost, canonicalHostPattern } from "./host-pattern.js";
export { parsePortRange, type PortRange } from "./port-range.js";
export { canonicalCidr, parseCidr, type Cidr } from "../../net/cidr.js";
export { migrate, loadMigrations, MigrationError, MIGRATIONS_DIR, type MigrateResult } from "./migrate.js";
export { insertPermission, deletePermission, listPermissions } from "./table.js";
export { DecisionCache } from "./decision-cache.js";
