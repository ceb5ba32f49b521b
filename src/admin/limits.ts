/**
 * GET /v1/limits/{limiter}/{key}: the current state of one key under one
 * limiter, read without consuming anything. The penalty box ("ban") is read
 * here directly; the guard's other limiters are read through the gateway's
 * `peekLimit` when it offers one.
 */
import { isIP } from "node:net";
import type { PenaltyBox } from "../limiter/penalty-box.js";
import { AdminError } from "./errors.js";

export interface PeekableGateway {
  readonly penaltyBox: PenaltyBox<boolean>;
  keyOf(address: string): string;
  /** State of `address` under a guard limiter, without consuming; undefined for a limiter it does not have (a promise on a shared store). */
  peekLimit?(limiter: string, address: string): Record<string, unknown> | undefined | Promise<Record<string, unknown> | undefined>;
}

/** Limiters a key can be looked up under. */
export const PEEKABLE_LIMITERS = ["ban", "max_connections_per_ip", "max_connections", "connection_rate", "prefix_connection_rate"] as const;

/** An address, or an address key as bans use it ("2001:db8::/64"). */
export function addressKey(gw: PeekableGateway, text: string): string {
  if (text.length > 64) throw new AdminError("invalid_address", "not an IP address or address key");
  if (isIP(text) !== 0) return gw.keyOf(text);
  const slash = text.indexOf("/");
  if (slash > 0 && isIP(text.slice(0, slash)) !== 0 && /^\d{1,3}$/.test(text.slice(slash + 1))) return text;
  throw new AdminError("invalid_address", "not an IP address or address key");
}

export async function peekLimit(gw: PeekableGateway, limiter: string, address: string): Promise<Record<string, unknown>> {
  if (!(PEEKABLE_LIMITERS as readonly string[]).includes(limiter)) {
    throw new AdminError("unknown_limiter", `no limiter named ${JSON.stringify(limiter.slice(0, 64))}`, { limiters: PEEKABLE_LIMITERS });
  }
  const key = addressKey(gw, address);
  if (limiter === "ban") return { limiter, key, ...(await banState(gw.penaltyBox, key)) };
  const state = await gw.peekLimit?.(limiter, key.includes("/") ? key.slice(0, key.indexOf("/")) : address);
  if (state === undefined) throw new AdminError("unknown_limiter", `limiter ${JSON.stringify(limiter)} is not on in this gateway`, { limiters: ["ban"] });
  return { limiter, key, ...state };
}

async function banState(box: PenaltyBox<boolean>, key: string): Promise<Record<string, unknown>> {
  // check() and status() only read: nothing here counts as an attempt.
  const d = await box.check(key);
  const st = await box.status(key);
  const now = box.now();
  return {
    allowed: d.allowed,
    state: d.reason ?? "clear",
    retry_after_ms: Math.ceil(d.retryAfterMs),
    streak: st.streak,
    bans: st.bans,
    banned_remaining_ms: Math.max(0, Math.ceil(st.bannedUntil - now)),
    shadow: box.shadow,
  };
}
