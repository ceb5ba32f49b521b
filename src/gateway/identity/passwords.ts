/**
 * Password hashes for proxy Basic users: scrypt (node:crypto) with a random
 * salt, stored self-describing as `scrypt$N$r$p$salt$hash` (salt and hash in
 * unpadded base64), so the cost can be raised later without breaking the
 * hashes already in configuration files.
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";

export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  N: number;
  /** Block size. */
  r: number;
  /** Parallelism. */
  p: number;
}

/** The default cost: 32 MiB and about 0.1-0.2 s per hash on a small server core. */
export const DEFAULT_SCRYPT: ScryptParams = { N: 1 << 15, r: 8, p: 1 };

const SALT_BYTES = 16;
const HASH_BYTES = 32;
// Bounds on what a stored hash may ask for, so a hostile or mistyped hash
// cannot make one verification eat gigabytes or minutes.
const MAX_N = 1 << 20;
const MIN_N = 1 << 10;
const MAX_MEMORY = 256 * 1024 * 1024;

export interface PasswordHash {
  params: ScryptParams;
  salt: Buffer;
  hash: Buffer;
}

function scryptAsync(plain: string, salt: Buffer, keylen: number, params: ScryptParams): Promise<Buffer> {
  const maxmem = 128 * params.N * params.r * params.p + 2 * 1024 * 1024 + 128 * params.r * params.p;
  return new Promise((resolve, reject) => {
    scrypt(plain, salt, keylen, { N: params.N, r: params.r, p: params.p, maxmem }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

function b64(buf: Buffer): string {
  return buf.toString("base64").replace(/=+$/, "");
}

/** Strict unpadded base64: only the alphabet, and only the canonical encoding of its bytes. */
function fromB64(s: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+$/.test(s)) return undefined;
  const buf = Buffer.from(s, "base64");
  return b64(buf) === s ? buf : undefined;
}

function validParams(p: ScryptParams): boolean {
  const { N, r, p: par } = p;
  if (![N, r, par].every((x) => Number.isSafeInteger(x) && x > 0)) return false;
  if (N < MIN_N || N > MAX_N || (N & (N - 1)) !== 0) return false;
  if (r > 32 || par > 16) return false;
  return 128 * N * r * par <= MAX_MEMORY;
}

function decimal(s: string | undefined): number {
  return s !== undefined && /^[1-9][0-9]{0,9}$/.test(s) ? Number(s) : NaN;
}

/** The parts of an encoded hash, or undefined when it is not a well-formed, acceptable scrypt hash. */
export function parsePasswordHash(encoded: string): PasswordHash | undefined {
  if (typeof encoded !== "string" || encoded.length > 512) return undefined;
  const parts = encoded.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return undefined;
  const params = { N: decimal(parts[1]), r: decimal(parts[2]), p: decimal(parts[3]) };
  if (!validParams(params)) return undefined;
  const salt = fromB64(parts[4]!);
  const hash = fromB64(parts[5]!);
  if (!salt || !hash || salt.length < 8 || salt.length > 64 || hash.length < 16 || hash.length > 64) return undefined;
  return { params, salt, hash };
}

export function isPasswordHash(encoded: string): boolean {
  return parsePasswordHash(encoded) !== undefined;
}

/** A new hash of `plain` with a random salt. `params` is for tests and for raising the cost. */
export async function hashPassword(plain: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  if (typeof plain !== "string") throw new TypeError("password must be a string");
  if (!validParams(params)) throw new RangeError("scrypt parameters out of range");
  const salt = randomBytes(SALT_BYTES);
  const hash = await scryptAsync(plain, salt, HASH_BYTES, params);
  return `scrypt$${params.N}$${params.r}$${params.p}$${b64(salt)}$${b64(hash)}`;
}

/** Whether `plain` matches `encoded`; false for any malformed encoding. Compares in constant time. */
export async function verifyPassword(plain: string, encoded: string): Promise<boolean> {
  if (typeof plain !== "string") return false;
  const parsed = parsePasswordHash(encoded);
  if (!parsed) return false;
  try {
    const got = await scryptAsync(plain, parsed.salt, parsed.hash.length, parsed.params);
    return timingSafeEqual(got, parsed.hash);
  } catch {
    return false;
  }
}
