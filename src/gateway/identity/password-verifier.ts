/**
 * Proxy Basic password checks as a bounded, fair resource. A credential
 * verified recently is accepted from the cache without hashing; everything
 * else (a known user or an unknown one, which costs the same dummy hash)
 * goes through one VerificationGate per gateway, where addresses with a
 * recent success and clients with a valid certificate are served first.
 * A flood of wrong passwords from fresh addresses can then fill only the
 * unknown class's bounded queue, and legitimate clients that logged in
 * before keep logging in.
 */
import type { Clock } from "../../core/clock.js";
import type { UserTable } from "./basic-auth.js";
import { CredentialCache } from "./credential-cache.js";
import { ExpiringLru } from "../../core/expiring-lru.js";
import { type GateObserver, type VerificationDrop, VerificationGate } from "./verification-gate.js";

export interface VerifierSettings {
  /** Verifications running at once. */
  concurrency: number;
  /** Verifications waiting at once. */
  maxQueued: number;
  /** Longest wait before a verification starts, ms. */
  maxWaitMs: number;
  /** Successful credentials remembered (0: no cache). */
  cacheSize: number;
  /** How long a verified credential is accepted without hashing, ms. */
  cacheTtlMs: number;
  /** Addresses with a recent success remembered for priority. */
  trustedSize: number;
  /** How long an address keeps its priority after a success, ms. */
  trustedTtlMs: number;
}

export type VerifyResult = "accept" | "reject" | VerificationDrop;

export interface VerifyRequest {
  user: string;
  password: string;
  /** The client's address key (address, or IPv6 prefix), for priority. */
  key: string;
  /** The client presented a certificate that verified: served first. */
  certified?: boolean;
  /** Fires when the client's connection closes: a waiting verification is dropped. */
  signal?: AbortSignal;
}

export class PasswordVerifier {
  readonly gate: VerificationGate;
  private readonly cache: CredentialCache;
  private readonly recent: ExpiringLru<true>;

  constructor(
    private users: UserTable,
    settings: VerifierSettings,
    clock: Clock,
    observer: GateObserver = {},
  ) {
    this.gate = new VerificationGate(limitsOf(settings), clock, observer);
    this.cache = new CredentialCache(clock, settings.cacheSize, settings.cacheTtlMs);
    this.recent = new ExpiringLru(clock, settings.trustedSize, settings.trustedTtlMs);
  }

  /** New users (a reload): cached credentials count only while their user's hash is unchanged. */
  useUsers(users: UserTable): void {
    this.users = users;
  }

  configure(settings: VerifierSettings): void {
    this.gate.configure(limitsOf(settings));
    this.cache.resize(settings.cacheSize, settings.cacheTtlMs);
    this.recent.resize(settings.trustedSize, settings.trustedTtlMs);
  }

  /** Credentials remembered now. */
  get cachedCredentials(): number {
    return this.cache.size;
  }

  async verify(r: VerifyRequest): Promise<VerifyResult> {
    const users = this.users;
    const stored = users.hashOf(r.user);
    if (stored !== undefined && this.cache.has(r.user, r.password, stored)) {
      this.recent.set(r.key, true);
      return "accept";
    }
    const priority = r.certified === true || this.recent.get(r.key) === true ? "trusted" : "unknown";
    const out = await this.gate.run(() => users.verify(r.user, r.password), { priority, signal: r.signal });
    if (!out.ran) return out.reason;
    if (!out.value) return "reject";
    if (stored !== undefined) this.cache.add(r.user, r.password, stored);
    this.recent.set(r.key, true);
    return "accept";
  }
}

function limitsOf(s: VerifierSettings): { concurrency: number; maxQueued: number; maxWaitMs: number } {
  return { concurrency: s.concurrency, maxQueued: s.maxQueued, maxWaitMs: s.maxWaitMs };
}
