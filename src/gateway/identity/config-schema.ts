/**
 * The `[auth]` section: how proxy Basic password checks are bounded
 * (docs/identity.md, "Password checks under attack"). Every key has a
 * default, so files written before the section existed keep loading.
 */
import { availableParallelism } from "node:os";
import { z } from "zod";
import { duration, intInRange } from "../../config/leaves.js";
import type { VerifierSettings } from "./password-verifier.js";

/** libuv's thread pool size when UV_THREADPOOL_SIZE does not say otherwise. */
const DEFAULT_THREAD_POOL = 4;

export const authSection = z.strictObject({
  /** Password checks running at once (default: libuv's thread pool size minus one, and the cores minus one, at least 1). */
  max_concurrent_verifications: intInRange(1, 1024).optional(),
  /** Password checks waiting at once; a check beyond this fails at once as a failed login. */
  max_queued_verifications: intInRange(0, 100_000).default(32),
  /** Longest a password check waits to start. */
  max_verification_wait: duration.default(5000),
  /** Successful credentials remembered so a reconnecting client is not hashed again (0: off). */
  cache_size: intInRange(0, 1_000_000).default(10_000),
  /** How long a verified credential is accepted without hashing. */
  cache_ttl: duration.default(300_000),
  /** Addresses with a recent successful login, served first when checks queue up. */
  trusted_size: intInRange(0, 1_000_000).default(10_000),
  /** How long an address keeps that priority after a successful login. */
  trusted_ttl: duration.default(3_600_000),
});

export type AuthConfig = z.output<typeof authSection>;

/** libuv's thread pool size for this process: UV_THREADPOOL_SIZE when it is a valid size (1-1024), else 4. */
export function threadPoolSize(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.UV_THREADPOOL_SIZE;
  const n = v !== undefined && /^[0-9]{1,4}$/.test(v.trim()) ? Number(v.trim()) : NaN;
  return n >= 1 && n <= 1024 ? n : DEFAULT_THREAD_POOL;
}

/**
 * Password checks at once by default: one pool thread stays free of password
 * hashing, so name lookups and file reads (which share the pool) never wait
 * behind a flood of logins; and one core stays free of it, so the event loop,
 * which answers every connection (and logs in every cached client), is not
 * one thread among several busy hashing ones. On 2 cores three checks at once
 * took that core: legitimate clients' p95 during a wrong-password flood was
 * twice what it is with one (docs/identity.md, "Password checks under attack").
 */
export function defaultConcurrency(env: NodeJS.ProcessEnv = process.env, cores: number = availableParallelism()): number {
  return Math.max(1, Math.min(threadPoolSize(env) - 1, cores - 1));
}

/** The verifier's settings. */
export function verifierSettings(a: AuthConfig, env: NodeJS.ProcessEnv = process.env, cores: number = availableParallelism()): VerifierSettings {
  return {
    concurrency: a.max_concurrent_verifications ?? defaultConcurrency(env, cores),
    maxQueued: a.max_queued_verifications,
    maxWaitMs: a.max_verification_wait,
    cacheSize: a.cache_size,
    cacheTtlMs: a.cache_ttl,
    trustedSize: a.trusted_size,
    trustedTtlMs: a.trusted_ttl,
  };
}

/**
 * What the schema cannot see: a concurrency that takes every thread of the
 * pool would make name lookups for CONNECT targets wait behind password
 * hashing (bench/suites/dns-under-auth.ts measures it).
 */
export function authEnvironmentProblems(a: AuthConfig, env: NodeJS.ProcessEnv = process.env): string[] {
  const pool = threadPoolSize(env);
  const n = a.max_concurrent_verifications;
  if (n === undefined || n < pool) return [];
  return [`auth.max_concurrent_verifications: expected less than libuv's thread pool size (${pool}; UV_THREADPOOL_SIZE), so name lookups keep a thread, got ${n}`];
}
