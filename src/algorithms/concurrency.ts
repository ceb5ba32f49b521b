/**
 * Concurrency leases, as pure transitions over a key's state:
 *   s[o] = number of live leases n, then n pairs (leaseId, expiresAt).
 * Expired leases are pruned on every transition, so a holder that crashed
 * without releasing frees its slot after the lease TTL. Releasing an id that
 * is not held is a no-op, which makes release idempotent.
 * Without a TTL (expiresAt = Infinity) leases only end by release.
 */
export function concurrencyWidth(limit: number): number {
  return 1 + 2 * limit;
}

export function concurrencyInit(s: Float64Array, o: number): void {
  s[o] = 0;
}

/** Drops expired leases; returns how many remain. */
export function concurrencyPrune(s: Float64Array, o: number, now: number): number {
  const n = s[o]!;
  let w = 0;
  for (let r = 0; r < n; r++) {
    const id = s[o + 1 + 2 * r]!;
    const exp = s[o + 2 + 2 * r]!;
    if (exp > now) {
      s[o + 1 + 2 * w] = id;
      s[o + 2 + 2 * w] = exp;
      w++;
    }
  }
  s[o] = w;
  return w;
}

/** Takes a slot for `id` if one is free. Returns the number of leases held after the call, or -1 when full. */
export function concurrencyAcquire(s: Float64Array, o: number, now: number, id: number, ttlMs: number, limit: number): number {
  const n = concurrencyPrune(s, o, now);
  if (n >= limit) return -1;
  s[o + 1 + 2 * n] = id;
  s[o + 2 + 2 * n] = now + ttlMs;
  s[o] = n + 1;
  return n + 1;
}

/** Ends lease `id`; true if it was held. */
export function concurrencyRelease(s: Float64Array, o: number, now: number, id: number): boolean {
  const n = concurrencyPrune(s, o, now);
  for (let i = 0; i < n; i++) {
    if (s[o + 1 + 2 * i] === id) {
      const last = n - 1;
      s[o + 1 + 2 * i] = s[o + 1 + 2 * last]!;
      s[o + 2 + 2 * i] = s[o + 2 + 2 * last]!;
      s[o] = last;
      return true;
    }
  }
  return false;
}

/** Extends lease `id` to now + ttl; false if it had already expired or been released. */
export function concurrencyRenew(s: Float64Array, o: number, now: number, id: number, ttlMs: number): boolean {
  const n = concurrencyPrune(s, o, now);
  for (let i = 0; i < n; i++) {
    if (s[o + 1 + 2 * i] === id) {
      s[o + 2 + 2 * i] = now + ttlMs;
      return true;
    }
  }
  return false;
}

/** Earliest expiry among live leases (Infinity when none expires). */
export function concurrencyEarliestExpiry(s: Float64Array, o: number): number {
  let min = Infinity;
  for (let i = 0; i < s[o]!; i++) min = Math.min(min, s[o + 2 + 2 * i]!);
  return min;
}

/** True when no lease is live at `now`. */
export function concurrencyIsIdle(s: Float64Array, o: number, now: number): boolean {
  const n = s[o]!;
  for (let i = 0; i < n; i++) if (s[o + 2 + 2 * i]! > now) return false;
  return true;
}
