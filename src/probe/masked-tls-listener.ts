/**
 * One accepted connection on a TLS listener with probe resistance: peek at
 * the ClientHello without consuming it; terminate TLS when it names one of
 * the listener's server names; otherwise splice the raw bytes to the mask
 * host (so the prober completes a real handshake with the real site) or,
 * with unknownSniAction = "reject_handshake", answer a fatal
 * unrecognized_name alert.
 */
import type net from "node:net";
import type tls from "node:tls";
import { type Clock, systemClock } from "../core/clock.js";
import { type Rng, systemRng } from "../core/random.js";
import { type DrsHandle, applyDrs } from "./drs.js";
import { type MaskRelayLimits, type MaskRelaySummary, type MaskTarget, relayToMask } from "./mask-relay.js";
import { type PeekVerdict, peekClientHello, replayIntoTls } from "./peek.js";
import { rejectHandshake } from "./reject-handshake.js";
import { type RejectionDeadline, startRejectionDelay } from "./rejection-delay.js";

export type UnknownSniAction = "mask" | "reject_handshake";

export interface MaskedTlsOptions {
  /** Server names served by this listener: exact names, or "*.example.com" for one label. Case-insensitive. */
  names: readonly string[];
  secureContext: tls.SecureContext;
  /** Extra options for the server-side TLSSocket (ALPN, requestCert, ...). */
  tlsOptions?: Omit<tls.TLSSocketOptions, "isServer" | "secureContext">;
  /** The mask host; without one, anything not terminated is closed silently after the delay. */
  mask?: MaskTarget;
  maskLimits?: MaskRelayLimits;
  /** What a well-formed ClientHello for another name, or for no name, gets (default "mask"). */
  unknownSniAction?: UnknownSniAction;
  /** Dynamic record sizing on terminated connections (default true). */
  drs?: boolean;
  /** Peek bounds: bytes (default ~18 KiB) and time (default 10 s). */
  peekMaxBytes?: number;
  peekTimeoutMs?: number;
  /** Rejection delay bounds (defaults 100 / 1000 ms). */
  delayFloorMs?: number;
  delayCeilingMs?: number;
  /** Started at accept time by the caller, if it wants the delay to cover its own work too. */
  deadline?: RejectionDeadline;
  clock?: Clock;
  rng?: Rng;
  /** Source address for connections to the mask host. */
  localAddress?: string;
  /** Receives the server-side TLS socket (handshake under way); from here the listener owns it. */
  onTerminated(tlsSocket: tls.TLSSocket, info: { serverName: string; drs: DrsHandle }): void;
}

export type MaskedTlsOutcome =
  | { kind: "terminated"; serverName: string }
  | { kind: "masked"; verdict: PeekVerdict; relay: MaskRelaySummary }
  | { kind: "rejected"; verdict: PeekVerdict }
  | { kind: "closed"; verdict: PeekVerdict };

/** True when `serverName` (already lower-case) is served: exact match or a one-label wildcard. */
export function matchesServerName(names: readonly string[], serverName: string): boolean {
  for (const raw of names) {
    const n = raw.toLowerCase();
    if (n === serverName) return true;
    if (n.startsWith("*.")) {
      const dot = serverName.indexOf(".");
      if (dot > 0 && serverName.slice(dot + 1) === n.slice(2)) return true;
    }
  }
  return false;
}

/**
 * Handles one accepted TCP connection. Resolves when the connection has been
 * handed to TLS termination (`terminated`, immediately after onTerminated) or
 * when the rejection path has finished with it. Never throws for anything the
 * client sends.
 */
export async function handleMaskedTlsConnection(socket: net.Socket, o: MaskedTlsOptions): Promise<MaskedTlsOutcome> {
  const clock = o.clock ?? systemClock;
  const deadline =
    o.deadline ?? startRejectionDelay({ clock, rng: o.rng ?? systemRng, floorMs: o.delayFloorMs, ceilingMs: o.delayCeilingMs });
  socket.allowHalfOpen = true;
  socket.on("error", () => socket.destroy());
  const { verdict, bytes } = await peekClientHello(socket, { maxBytes: o.peekMaxBytes, timeoutMs: o.peekTimeoutMs, clock });

  if (verdict.kind === "tls-with-sni" && matchesServerName(o.names, verdict.serverName)) {
    deadline.cancel();
    const tlsSocket = replayIntoTls(socket, bytes, { ...o.tlsOptions, secureContext: o.secureContext });
    const drs = applyDrs(tlsSocket, o.drs ?? true);
    o.onTerminated(tlsSocket, { serverName: verdict.serverName, drs });
    return { kind: "terminated", serverName: verdict.serverName };
  }

  const wellFormedHello = verdict.kind === "tls-with-sni" || verdict.kind === "tls-no-sni";
  if (wellFormedHello && (o.unknownSniAction ?? "mask") === "reject_handshake") {
    rejectHandshake(socket, deadline);
    await new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once("close", () => resolve())));
    return { kind: "rejected", verdict };
  }
  if (o.mask !== undefined) {
    const relay = await relayToMask(socket, bytes, { ...o.maskLimits, mask: o.mask, deadline, clock, localAddress: o.localAddress });
    return { kind: "masked", verdict, relay };
  }
  await deadline.wait();
  socket.destroy();
  return { kind: "closed", verdict };
}
