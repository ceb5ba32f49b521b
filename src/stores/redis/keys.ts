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

/** The hash tag of a key made by this module (what decides its Cluster slot). */
export function hashTag(redisKey: string): string {
  const open = redisKey.indexOf("{");
  const close = open < 0 ? -1 : redisKey.indexOf("}", open + 1);
  return close > open + 1 ? redisKey.slice(open + 1, close) : redisKey;
}
