/**
 * One admitted connection, and the auth-attempt API of the application's
 * own authentication on it:
 *
 * - `authCheck(user?)` before verifying: refuses while the address backs
 *   off or is banned, or the subject is locked out;
 * - `authFailed(...)` once per failed attempt: logs `auth attempt
 *   result=reject`, counts the attempt on this connection (cut after
 *   `maxAuthAttempts`), against the address (back-off, then a ban that
 *   cuts every connection of the address) and against the subject (lockout);
 * - `authSucceeded(...)` once on success: logs `result=accept` and clears
 *   the subject's failures (the address keeps its record: one valid
 *   account must not wash an address's failures away).
 *
 * Each answers at once on a synchronous store, with a promise otherwise.
 */
import type { Socket } from "node:net";
import type { Clock } from "../core/clock.js";
import type { PenaltyBox } from "../limiter/penalty-box.js";
import type { Admission, ConnectionGuard } from "../gateway/guard/connection-guard.js";
import { thenMaybe } from "../core/maybe-promise.js";
import type { Closable } from "../gateway/guard/connection-registry.js";
import type { ServerEventLog } from "./event-log.js";

/** What a connection needs of the guard that admitted it (the ServerGuard). */
export interface ConnectionOwner {
  readonly guard: ConnectionGuard;
  readonly clock: Clock;
  readonly log: ServerEventLog | undefined;
  readonly lockout: PenaltyBox<boolean> | undefined;
  readonly maxAuthAttempts: number;
  track(c: GuardedConnection): void;
  untrack(c: GuardedConnection): void;
  announceBan(key: string, address: string, untilBox: number, failures: number): void;
}

export interface AuthAttempt {
  /** The subject the client claimed (user name); counted for the lockout and written as `user`. */
  user?: string;
  /** SHA256:... as `ssh-keygen -lf` prints it, when the credential is a key. */
  keyFingerprint?: string;
  /** publickey, password, token... */
  method?: string;
  /** Why it failed (default bad_credentials). */
  reason?: string;
}

export interface AuthGate {
  allowed: boolean;
  /** Set when refused: backoff, banned or locked. */
  reason?: "backoff" | "banned" | "locked";
  /** How long until an attempt may pass, when refused. */
  retryAfterMs: number;
}

export interface AuthVerdict {
  /** Failed attempts on this connection so far. */
  attempts: number;
  /** The connection used its last attempt: it is being cut. */
  disconnect: boolean;
  /** This failure banned the address (its connections are being cut). */
  banned: boolean;
  /** This failure locked the subject. */
  locked: boolean;
}

/** How long a custom closer may take before the socket is destroyed anyway. */
const CLOSE_GRACE_MS = 2000;

export class GuardedConnection implements Closable {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly transport: string;
  readonly openedAt: number;
  private failures = 0;
  private closing = false;
  private ended = false;
  private closer: ((reason: string) => void) | undefined;
  private closeReason: string | undefined;

  constructor(
    private readonly owner: ConnectionOwner,
    readonly socket: Socket,
    private readonly admission: Admission,
    transport: string,
  ) {
    this.remoteAddress = socket.remoteAddress ?? "";
    this.remotePort = socket.remotePort ?? 0;
    this.transport = transport;
    this.openedAt = owner.clock.now();
    owner.track(this);
    owner.log?.connectionOpened({ remote_addr: this.remoteAddress, transport });
    socket.once("close", () => this.onClose());
  }

  /** Address key (the address, or its IPv6 prefix) the connection is counted and banned by. */
  get key(): string {
    return this.admission.key;
  }

  /** On the allow list: exempt from caps, rates and bans. */
  get exempt(): boolean {
    return this.admission.exempt;
  }

  /** Failed authentications on this connection so far. */
  get authFailures(): number {
    return this.failures;
  }

  /**
   * How the connection is cut (a ban, the last auth attempt): by default the
   * socket is destroyed; a protocol that can say goodbye (SSH's disconnect
   * message) sets its own. The socket is destroyed anyway if it is still open
   * two seconds later.
   */
  setCloser(f: (reason: string) => void): void {
    this.closer = f;
  }

  close(reason: string): void {
    if (this.closing || this.ended) return;
    this.closing = true;
    this.closeReason = reason;
    if (this.closer === undefined) {
      this.socket.destroy();
      return;
    }
    try {
      this.closer(reason);
    } catch {
      this.socket.destroy();
    }
    if (!this.socket.destroyed) setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  /** Whether an attempt may be verified now (address not backing off or banned, subject not locked). */
  authCheck(user?: string): AuthGate | Promise<AuthGate> {
    if (this.exempt) return { allowed: true, retryAfterMs: 0 };
    return thenMaybe(this.owner.guard.authCheck(this.key), (d) => {
      if (!d.allowed) return { allowed: false, reason: d.reason === "banned" ? "banned" : "backoff", retryAfterMs: d.retryAfterMs } as AuthGate;
      const box = this.owner.lockout;
      if (box === undefined || user === undefined) return { allowed: true, retryAfterMs: 0 };
      return thenMaybe(box.check(user), (l): AuthGate => (l.allowed ? { allowed: true, retryAfterMs: 0 } : { allowed: false, reason: "locked", retryAfterMs: l.retryAfterMs }));
    }) as AuthGate | Promise<AuthGate>;
  }

  /** One failed attempt: logged, counted on the connection, the address and the subject. */
  authFailed(a: AuthAttempt = {}): AuthVerdict | Promise<AuthVerdict> {
    const owner = this.owner;
    this.failures++;
    const attempts = this.failures;
    const reason = a.reason ?? "bad_credentials";
    owner.log?.authAttempt({ remote_addr: this.remoteAddress, result: "reject", user: a.user, key_fingerprint: a.keyFingerprint, method: a.method, reason });
    const disconnect = attempts >= owner.maxAuthAttempts;
    // Refusals the guard itself made (back-off, ban, lockout) are not new evidence against anyone.
    const counted = !this.exempt && reason !== "backoff" && reason !== "banned" && reason !== "locked";
    const finish = (banned: boolean, locked: boolean): AuthVerdict => {
      // After the caller's synchronous reply (an SSH failure message) has gone out.
      if (disconnect) setImmediate(() => this.close("max_auth_attempts"));
      return { attempts, disconnect, banned, locked };
    };
    if (!counted) return finish(false, false);
    const box = owner.lockout;
    const subject = box !== undefined && a.user !== undefined ? box.recordFailure(a.user) : undefined;
    const address = thenMaybe(owner.guard.recordAuthFailure(this.key), (r) => {
      if (r.banned && !r.shadow) owner.announceBan(this.key, this.remoteAddress, r.bannedUntil, r.failures);
      return r.banned && !r.shadow;
    });
    if (address instanceof Promise || subject instanceof Promise) {
      return Promise.all([address, subject]).then(([banned, s]) => finish(banned, s?.banned ?? false));
    }
    return finish(address, subject?.banned ?? false);
  }

  /** A successful authentication: logged; the subject's failures are cleared. */
  authSucceeded(a: AuthAttempt = {}): void | Promise<void> {
    const owner = this.owner;
    owner.log?.authAttempt({ remote_addr: this.remoteAddress, result: "accept", user: a.user, key_fingerprint: a.keyFingerprint, method: a.method });
    if (owner.lockout !== undefined && a.user !== undefined) return owner.lockout.recordSuccess(a.user);
    return undefined;
  }

  private onClose(): void {
    if (this.ended) return;
    this.ended = true;
    this.admission.release();
    this.owner.untrack(this);
    this.owner.log?.connectionClosed({ remote_addr: this.remoteAddress, duration_ms: this.owner.clock.now() - this.openedAt, reason: this.closeReason });
  }
}
