/**
 * Ed25519 signing keys of the permission authority. Keys live in PEM files
 * (PKCS#8 private, SPKI public). A key's id is the first 16 hex digits of the
 * SHA-256 of its raw 32-byte public key: short enough to store on every row,
 * long enough that rotating keys never collide by accident, and derivable by
 * anyone holding the public key, so it needs no registry.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { InvalidArgumentError } from "../../core/errors.js";

export interface SigningKey {
  readonly keyId: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

function assertEd25519(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== "ed25519") {
    throw new InvalidArgumentError(what, `must be an Ed25519 key, got ${key.asymmetricKeyType ?? key.type}`);
  }
}

/** The key id of an Ed25519 public key. */
export function keyIdOf(publicKey: KeyObject): string {
  assertEd25519(publicKey, "public key");
  const raw = Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url");
  return createHash("sha256").update(raw).digest("hex").slice(0, 16);
}

export function generateSigningKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return { keyId: keyIdOf(publicKey), privateKey, publicKey };
}

export function privateKeyPem(key: SigningKey): string {
  return key.privateKey.export({ format: "pem", type: "pkcs8" }).toString();
}

export function publicKeyPem(key: KeyObject): string {
  return key.export({ format: "pem", type: "spki" }).toString();
}

/** Parses a PKCS#8 PEM private key; throws InvalidArgumentError naming `source` when it is not Ed25519. */
export function parsePrivateKey(pem: string | Buffer, source = "private key"): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch {
    throw new InvalidArgumentError(source, "not a PEM private key");
  }
  assertEd25519(privateKey, source);
  const publicKey = createPublicKey(privateKey);
  return { keyId: keyIdOf(publicKey), privateKey, publicKey };
}

/** Parses an SPKI PEM public key (a private key file is refused: the gateway must never hold one). */
export function parsePublicKey(pem: string | Buffer, source = "public key"): KeyObject {
  if (String(pem).includes("PRIVATE KEY")) throw new InvalidArgumentError(source, "is a private key; give the public key");
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new InvalidArgumentError(source, "not a PEM public key");
  }
  assertEd25519(key, source);
  return key;
}

export function loadPrivateKey(path: string): SigningKey {
  return parsePrivateKey(readFile(path), path);
}

export function loadPublicKey(path: string): KeyObject {
  return parsePublicKey(readFile(path), path);
}

function readFile(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new InvalidArgumentError(path, `cannot read: ${(e as NodeJS.ErrnoException).code ?? "error"}`);
  }
}

/**
 * The public keys a verifier trusts, by key id. Several keys at once is how
 * keys rotate: trust old and new, re-sign rows with the new key, then drop
 * the old one.
 */
export class Keyring {
  private readonly keys = new Map<string, KeyObject>();

  constructor(keys: Iterable<KeyObject> = []) {
    for (const k of keys) this.add(k);
  }

  static fromFiles(paths: readonly string[]): Keyring {
    return new Keyring(paths.map(loadPublicKey));
  }

  add(key: KeyObject): string {
    const id = keyIdOf(key);
    this.keys.set(id, key);
    return id;
  }

  get(keyId: string): KeyObject | undefined {
    return this.keys.get(keyId);
  }

  ids(): string[] {
    return [...this.keys.keys()];
  }

  get size(): number {
    return this.keys.size;
  }
}
