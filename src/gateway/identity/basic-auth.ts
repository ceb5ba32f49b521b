/**
 * Proxy Basic authentication (RFC 7617 in a Proxy-Authorization header) and
 * the table of users it is checked against.
 */
import { randomBytes } from "node:crypto";
import { InvalidArgumentError } from "../../core/errors.js";
import { DEFAULT_SCRYPT, hashPassword, parsePasswordHash, verifyPassword } from "./passwords.js";

/** Longest Proxy-Authorization header value considered; longer ones are refused unread. */
export const MAX_PROXY_AUTHORIZATION_LENGTH = 4096;

const CTL = /\p{Cc}/u;

/**
 * The user and password of a `Basic` Proxy-Authorization value, or undefined
 * unless it is exactly: the scheme (any case), spaces, canonical padded
 * base64 of UTF-8 `user:password` with a non-empty user and no control
 * characters.
 */
export function parseProxyAuthorization(header: string | undefined): { user: string; password: string } | undefined {
  if (typeof header !== "string" || header.length > MAX_PROXY_AUTHORIZATION_LENGTH) return undefined;
  const m = /^[ \t]*basic +([A-Za-z0-9+/]+={0,2})[ \t]*$/i.exec(header);
  if (!m) return undefined;
  const token = m[1]!;
  if (token.length % 4 !== 0) return undefined;
  const bytes = Buffer.from(token, "base64");
  // Reject non-canonical encodings (stray bits in the last character).
  if (bytes.toString("base64") !== token) return undefined;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined;
  }
  const colon = text.indexOf(":");
  if (colon <= 0 || CTL.test(text)) return undefined;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

/**
 * Users and their password hashes. `verify` costs one scrypt run whether or
 * not the user exists (an unknown user is checked against a dummy hash with
 * the table's usual parameters), so response time does not tell which user
 * names exist. The gateway never calls it directly: it goes through a
 * PasswordVerifier, which bounds how many run at once.
 */
export class UserTable {
  private readonly users = new Map<string, string>();
  // A hash of a random secret nobody knows, so it never matches; made up front
  // so that even the first unknown user costs the same single scrypt run.
  private readonly dummy: Promise<string>;

  /** `users` maps user name to an encoded hash (see hashPassword); a malformed hash is a configuration error. */
  constructor(users: Record<string, string>) {
    let first: ReturnType<typeof parsePasswordHash>;
    for (const [user, encoded] of Object.entries(users)) {
      const parsed = parsePasswordHash(encoded);
      if (!parsed) throw new InvalidArgumentError(`users.${user}`, "not a password hash (make one with `portcullis hash-password`)");
      first ??= parsed;
      this.users.set(user, encoded);
    }
    this.dummy = hashPassword(randomBytes(16).toString("base64"), first?.params ?? DEFAULT_SCRYPT);
  }

  get size(): number {
    return this.users.size;
  }

  has(user: string): boolean {
    return this.users.has(user);
  }

  /** The stored hash of `user` (undefined for an unknown user), so a cache can tell when it changed. */
  hashOf(user: string): string | undefined {
    return this.users.get(user);
  }

  async verify(user: string, password: string): Promise<boolean> {
    const encoded = this.users.get(user);
    if (encoded !== undefined) return verifyPassword(password, encoded);
    await verifyPassword(password, await this.dummy);
    return false;
  }
}
