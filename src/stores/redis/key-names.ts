/** Redis key names and their Cluster hash tags. */
import calculateSlot from "cluster-key-slot";
import { InvalidArgumentError } from "../../core/errors.js";

/**
 * Redis key names. Every key of one limit and subject is `<prefix>{<limit>:<key>}`
 * plus a suffix for auxiliary keys: the braces are a Cluster hash tag, so the
 * keys one decision touches always share a slot, while different subjects
 * spread over the cluster.
 */
export function validPrefix(prefix: string): string {
  if (typeof prefix !== "string" || /[{}]/.test(prefix)) {
    throw new InvalidArgumentError("prefix", "must be a string without braces (they are reserved for hash tags)");
  }
  return prefix;
}

export function validName(name: unknown): string {
  if (typeof name !== "string" || name.length === 0 || /[{}]/.test(name)) {
    throw new InvalidArgumentError("name", "must be a non-empty string without braces");
  }
  return name;
}

/** The state key of `key` under limit `name`. */
export function stateKey(prefix: string, name: string, key: string): string {
  return `${prefix}{${name}:${key}}`;
}

/** A key shared by a whole limit (ban index, pub/sub channel name). */
export function limitKey(prefix: string, name: string, suffix: string): string {
  return `${prefix}{${name}}:${suffix}`;
}

/**
 * The Cluster slot of a key (CRC16 of its hash tag, as Redis computes it).
 * One script call may touch several keys only if they share a slot, which
 * keys with different hash tags sometimes do.
 */
export function slotOf(redisKey: string): number {
  return calculateSlot(redisKey);
}
