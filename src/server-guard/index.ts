/**
 * Protection inside your own server (`portcullis/server-guard`): the
 * gateway's connection guard on a net/tls server, the auth-attempt API for
 * your own authentication, and fail2ban-friendly event lines. docs/library.md.
 */
export { ServerGuard, createServerGuard, protect, type ProtectOptions, type Refusal } from "./server-guard.js";
export { GuardedConnection, type AuthAttempt, type AuthGate, type AuthVerdict } from "./guarded-connection.js";
export { type ServerGuardOptions, type BanOptions, type LockoutOptions } from "./options.js";
export { createServerEventLog, type ServerEventLog, type ServerEventLogOptions, type AuthAttemptEvent, type PinoLike } from "./event-log.js";
