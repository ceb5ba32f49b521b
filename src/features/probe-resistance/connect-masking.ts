/**
 * The connect (and plain HTTP) listener's side of masking: a request that is
 * not an authenticated CONNECT is handed, with every byte already read, to
 * the mask relay. The listener never answers such a request itself (no 407,
 * no Proxy-Authenticate, no byte of its own).
 */
import type net from "node:net";
import { type MaskRelayOptions, type MaskRelaySummary, relayToMask } from "./mask-relay.js";

/**
 * Masks an unauthenticated or malformed request. `bufferedBytes` is every
 * byte the listener read from the socket, in order (pass an empty buffer if
 * none); the socket must not have been written to. Start `o.deadline` when
 * the connection was accepted so the whole rejection is normalized, not only
 * its tail. The caller still counts the connection against the guard and the
 * penalty box.
 */
export function maskUnauthenticated(socket: net.Socket, bufferedBytes: Buffer, o: MaskRelayOptions): Promise<MaskRelaySummary> {
  return relayToMask(socket, bufferedBytes, o);
}

export type ConnectHeadVerdict =
  /** The request head (through CRLF CRLF) is complete: the listener parses and authenticates it. */
  | { kind: "head-complete"; headBytes: number }
  /** The bytes cannot be the start of a CONNECT request: mask now, without waiting for more. */
  | { kind: "not-connect" }
  /** The head is larger than the listener accepts: mask with what was read. */
  | { kind: "too-large" }
  | { kind: "need-more-bytes" };

const CONNECT_PREFIX = Buffer.from("CONNECT ");
const HEAD_END = Buffer.from("\r\n\r\n");

/**
 * Early classification of a connect listener's first bytes, so garbage is
 * masked as soon as it is recognisable instead of after a read timeout (a
 * real web server answers garbage at once; so must the mask host, in time).
 */
export function connectHeadVerdict(buf: Buffer, maxHeadBytes: number): ConnectHeadVerdict {
  const n = Math.min(buf.length, CONNECT_PREFIX.length);
  if (!buf.subarray(0, n).equals(CONNECT_PREFIX.subarray(0, n))) return { kind: "not-connect" };
  const end = buf.indexOf(HEAD_END);
  if (end >= 0 && end + HEAD_END.length <= maxHeadBytes) return { kind: "head-complete", headBytes: end + HEAD_END.length };
  if (buf.length >= maxHeadBytes) return { kind: "too-large" };
  return { kind: "need-more-bytes" };
}
