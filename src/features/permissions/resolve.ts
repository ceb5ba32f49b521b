import { lookup } from "node:dns/promises";
import type { Clock } from "../../core/clock.js";

/** Resolves a host name to its addresses (IPv4 and IPv6). */
export type Resolver = (host: string) => Promise<string[]>;

/**
 * The system resolver (getaddrinfo, so /etc/hosts and nsswitch count), every
 * address it returns. getaddrinfo runs on libuv's thread pool, which password
 * hashing shares; it stays the resolver because the password verifier leaves
 * one pool thread free by default (auth.max_concurrent_verifications, checked
 * against the pool size at start). Measured with `npm run bench -- dns-under`:
 * with 3 scrypt runs in flight on the 4-thread pool a lookup takes a p95 of a
 * few ms; with 4 it waits for a scrypt run (p50 ~330 ms), where c-ares
 * (dns.Resolver, no pool) is unaffected but ignores /etc/hosts.
 */
export const systemResolver: Resolver = async (host) => (await lookup(host, { all: true, order: "verbatim" })).map((a) => a.address);

export type ResolveResult = { ok: true; addresses: string[] } | { ok: false; reason: string };

/**
 * Runs `resolve` bounded by `timeoutMs` of `clock`'s time. A resolver that
 * throws, answers nothing or answers too late yields a reason instead.
 * (getaddrinfo itself cannot be cancelled; a late answer is just ignored.)
 */
export function resolveBounded(resolve: Resolver, host: string, timeoutMs: number, clock: Clock): Promise<ResolveResult> {
  return new Promise((done) => {
    let settled = false;
    const finish = (r: ResolveResult): void => {
      if (settled) return;
      settled = true;
      timer.cancel();
      done(r);
    };
    const timer = clock.setTimer(() => finish({ ok: false, reason: "name resolution timed out" }), timeoutMs);
    let pending: Promise<string[]>;
    try {
      pending = Promise.resolve(resolve(host));
    } catch {
      pending = Promise.reject(new Error("resolver threw"));
    }
    pending.then(
      (addresses) =>
        finish(
          Array.isArray(addresses) && addresses.length > 0
            ? { ok: true, addresses }
            : { ok: false, reason: "name resolved to no addresses" },
        ),
      () => finish({ ok: false, reason: "name resolution failed" }),
    );
  });
}
