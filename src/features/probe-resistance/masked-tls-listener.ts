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
import { type Clock, systemClock } from "../../core/clock.js";
import { type Rng, systemRng } from "../../core/random.js";
import { type DrainLimits, type DrainSummary, drainAndClose } from "./drain.js";
import { type DrsHandle, applyDrs } from "./drs.js";
import { EarlyMask } from "./early-mask.js";
import { type MaskRelayLimits, type MaskRelaySummary, type MaskTarget, relayToMask } from "./mask-relay.js";
import { type PeekVerdict, peekClientHello, replayIntoTls } from "./peek.js";
import { rejectHandshake } from "./reject-handshake.js";
import { type RejectionDeadline, startRejectionDelay } from "./rejection-delay.js";
import type { ShapePaddingOptions } from "./shape-padding.js";

/**
 * 0: the mask host is dialled at accept, in parallel with the peek (a served
 * client's mask connection is closed unused, without a byte). Any window
 * delays the mask host's own timeouts by as much: measured on loopback, a
 * 20 ms window let a classifier tell silent probes apart by their close time
 * alone, and even a timer of 0 left them a few ms late.
 */
export const DEFAULT_CLASSIFY_WINDOW_MS = 0;

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
  /** DRS: how long a partial record waits for more data (DrsOptions.flushMs). */
  drsFlushMs?: number;
  /** Peek bounds: bytes (default ~18 KiB) and time (default 10 s). */
  peekMaxBytes?: number;
  peekTimeoutMs?: number;
  /** Rejection delay bounds (default 0: the mask host's own timing, nothing added). */
  delayFloorMs?: number;
  delayCeilingMs?: number;
  /**
   * A connection not classified this long after the call gets its mask
   * connection now (default 0: at accept), so the mask host's own timeouts start
   * with the prober's connection; the peek goes on until a verdict, and
   * stops as soon as the mask host speaks or closes.
   */
  classifyWindowMs?: number;
  /** Inter-packet timing on masked connections (mask host -> client). */
  ipt?: boolean;
  /** Shape padding of what masked clients send on to the mask host (off by default). */
  shapePadding?: ShapePaddingOptions;
  /** Without a mask host: how the client is drained before its FIN. */
  drain?: DrainLimits;
  /** Called once the connection is known not to be served, before it is masked, rejected or drained. */
  onUnserved?: () => void;
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
  | { kind: "closed"; verdict: PeekVerdict; drain: DrainSummary };

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
  const rng = o.rng ?? systemRng;
  const deadline = o.deadline ?? startRejectionDelay({ clock, rng, floorMs: o.delayFloorMs ?? 0, ceilingMs: o.delayCeilingMs ?? 0 });
  socket.allowHalfOpen = true;
  socket.on("error", () => socket.destroy());
  // Not classified within the window: dial the mask host now; if it speaks or closes first, stop classifying.
  let early: EarlyMask | undefined;
  const stop = new AbortController();
  const mask = o.mask;
  const dial = (target: MaskTarget) => {
    early = new EarlyMask(target, o.localAddress);
    early.onActivity(() => stop.abort());
  };
  const windowMs = o.classifyWindowMs ?? DEFAULT_CLASSIFY_WINDOW_MS;
  // Window 0: dial now, at accept, like a port-forward would (even a timer of 0 put the mask host's clock a few ms late).
  if (mask !== undefined && windowMs <= 0) dial(mask);
  const window = mask === undefined || windowMs <= 0 ? undefined : clock.setTimer(() => dial(mask), windowMs);
  const { verdict, bytes } = await peekClientHello(socket, { maxBytes: o.peekMaxBytes, timeoutMs: o.peekTimeoutMs, clock, signal: stop.signal });
  window?.cancel();

  if (verdict.kind === "tls-with-sni" && matchesServerName(o.names, verdict.serverName)) {
    deadline.cancel();
    early?.discard();
    const tlsSocket = replayIntoTls(socket, bytes, { ...o.tlsOptions, secureContext: o.secureContext });
    const drs = applyDrs(tlsSocket, o.drs ?? true, { flushMs: o.drsFlushMs, clock });
    o.onTerminated(tlsSocket, { serverName: verdict.serverName, drs });
    return { kind: "terminated", serverName: verdict.serverName };
  }
  return rejectUnserved(socket, verdict, bytes, early, deadline, o);
}

/**
 * Everything the listener does not serve: masked (spliced raw to the mask
 * host, on the early connection when there is one), answered with the
 * unrecognized_name alert, or, without a mask host, drained and closed.
 */
export async function rejectUnserved(
  socket: net.Socket,
  verdict: PeekVerdict,
  bytes: Buffer,
  early: EarlyMask | undefined,
  deadline: RejectionDeadline,
  o: Omit<MaskedTlsOptions, "names" | "secureContext" | "onTerminated">,
): Promise<Exclude<MaskedTlsOutcome, { kind: "terminated" }>> {
  const clock = o.clock ?? systemClock;
  o.onUnserved?.();
  const wellFormedHello = verdict.kind === "tls-with-sni" || verdict.kind === "tls-no-sni";
  if (wellFormedHello && (o.unknownSniAction ?? "mask") === "reject_handshake") {
    early?.discard();
    rejectHandshake(socket, deadline);
    await new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once("close", () => resolve())));
    return { kind: "rejected", verdict };
  }
  if (o.mask !== undefined) {
    const relay = await relayToMask(socket, bytes, {
      ...o.maskLimits,
      mask: o.mask,
      deadline,
      clock,
      localAddress: o.localAddress,
      early: early?.handOver(),
      ipt: o.ipt === true ? { rng: o.rng } : undefined,
      shapePadding: o.shapePadding,
      rng: o.rng,
    });
    return { kind: "masked", verdict, relay };
  }
  const drain = await drainAndClose(socket, bytes.length, { ...o.drain, clock, deadline });
  return { kind: "closed", verdict, drain };
}
