/**
 * Bearer-token check in constant time: both sides are hashed first, so the
 * comparison neither stops at the first differing byte nor reveals the
 * token's length.
 */
import { createHash, timingSafeEqual } from "node:crypto";

export class BearerAuth {
  private readonly expected: Buffer;

  constructor(token: string) {
    this.expected = digest(token);
  }

  /** Whether an Authorization header carries the token. */
  check(header: string | undefined): boolean {
    const m = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    // Hash something even without a token, so a missing header costs the same as a wrong one.
    const given = digest(m?.[1] ?? "");
    return timingSafeEqual(given, this.expected) && m !== null;
  }
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}
