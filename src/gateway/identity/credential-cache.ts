/** The cache of recently verified credentials, so a reconnecting client does not pay a password hash again. */
import { createHmac, randomBytes } from "node:crypto";
import type { Clock } from "../../core/clock.js";
import { ExpiringLru } from "../../core/expiring-lru.js";

/**
 * Credentials verified recently, so a legitimate client that reconnects does
 * not pay a password hash again. Only successes are kept, keyed by an HMAC
 * (per-instance random key) of the user and password, so the memory never
 * holds a password or anything that can be checked against one offline
 * without the key. Each entry remembers the stored hash it was verified
 * against: after a reload that changes the user's hash the entry no longer
 * counts. Bounded (LRU) with a short TTL from the moment of verification.
 */
export class CredentialCache {
  private readonly entries: ExpiringLru<string>;

  constructor(
    clock: Clock,
    maxEntries: number,
    ttlMs: number,
    /** The HMAC key (default: 32 random bytes); given only by tests. */
    private readonly key: Buffer = randomBytes(32),
  ) {
    this.entries = new ExpiringLru(clock, maxEntries, ttlMs);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Whether `user`/`password` was verified against `storedHash` within the TTL. */
  has(user: string, password: string, storedHash: string): boolean {
    return this.entries.get(this.keyOf(user, password)) === storedHash;
  }

  /** Records a successful verification of `user`/`password` against `storedHash`. */
  add(user: string, password: string, storedHash: string): void {
    this.entries.set(this.keyOf(user, password), storedHash);
  }

  resize(maxEntries: number, ttlMs: number): void {
    this.entries.resize(maxEntries, ttlMs);
  }

  clear(): void {
    this.entries.clear();
  }

  private keyOf(user: string, password: string): string {
    // Length-prefixed, so no (user, password) pair can collide with another by moving the boundary.
    return createHmac("sha256", this.key).update(`${user.length}:${user}`).update(password).digest("base64");
  }
}
