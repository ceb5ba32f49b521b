/**
 * Probe resistance on a TLS `tcp` listener: the ClientHello is peeked before
 * any TLS byte is sent. A hello naming one of `server_names` is terminated
 * here (with dynamic record sizing unless `drs = false`) and relayed to the
 * upstream as usual; anything else (another name, no name, not TLS) is
 * spliced raw to the mask host, or, with unknown_sni_action =
 * "reject_handshake", answered with the alert a web server gives; with
 * `mask = false` it is drained and closed with a FIN. Probing counts for the
 * operator as on a `connect` listener (one penalty-box failure per
 * connection not served) and never changes what the prober sees.
 */
import { whenReady } from "../../core/maybe-promise.js";
import type net from "node:net";
import type tls from "node:tls";
import { type MaskedTlsOptions, handleMaskedTlsConnection } from "./masked-tls-listener.js";
import type { RejectionDeadline } from "./rejection-delay.js";
import { classifyWindowMs } from "./config-schema.js";
import type { MaskedConnection, MaskingContext, MaskingListenerConfig } from "./gateway-view.js";
import { drainOptionsOf, maskOptionsOf, rejectionDeadlineOf } from "./connect-masker.js";

/** Whether a listener's TLS connections go through the ClientHello peek. */
export function masksTls(cfg: MaskingListenerConfig): boolean {
  return cfg.kind === "tcp" && cfg.tls !== undefined && cfg.probe_resistance !== undefined;
}

/** Options of the masked-TLS flow from a listener's configuration (everything but the names and the callback). */
function tlsMaskOptions(cfg: MaskingListenerConfig, conn: MaskedConnection, ctx: MaskingContext, deadline: RejectionDeadline): Omit<MaskedTlsOptions, "names" | "secureContext" | "onTerminated"> {
  const p = cfg.probe_resistance!;
  const masked = p.mask === false ? undefined : maskOptionsOf(p, ctx);
  return {
    mask: masked?.mask,
    maskLimits: masked,
    unknownSniAction: p.unknown_sni_action,
    drs: p.drs,
    // The hello must arrive within the handshake bound, like any TLS handshake on this listener.
    peekTimeoutMs: cfg.tls!.handshake_timeout,
    classifyWindowMs: classifyWindowMs(p),
    ipt: p.ipt.enabled,
    shapePadding: masked?.shapePadding,
    drain: drainOptionsOf(p),
    deadline,
    clock: ctx.clock,
    rng: ctx.rng,
    // Once the flow decides not to serve, bans leave the connection alone.
    onUnserved: () => (conn.masked = true),
  };
}

/**
 * Runs the peek on an admitted raw socket. `serve` receives the server-side
 * TLS socket of a served name; the listener's protocol runs on it from there.
 * `refusedBy`: the guard refused this address (banned, throttled): nothing is
 * served to it, everything is masked at once, served names included.
 */
export function acceptMaskedTls(
  conn: MaskedConnection,
  cfg: MaskingListenerConfig,
  secureContext: tls.SecureContext,
  ctx: MaskingContext,
  serve: (tlsSocket: tls.TLSSocket) => void,
  refusedBy?: string,
): void {
  const p = cfg.probe_resistance!;
  const deadline = rejectionDeadlineOf(p, ctx);
  const o = tlsMaskOptions(cfg, conn, ctx, deadline);
  // A refused address is served nothing: every name, the listener's own included, is treated as unknown.
  // A ban that comes while the hello is being read refuses it too (Connection.close leaves it open for that),
  // so the names are read when the hello is matched, not now.
  const served = cfg.server_names ?? [];
  conn.classifying = true;
  const flow = handleMaskedTlsConnection(conn.raw as net.Socket, {
    ...o,
    get names() {
      return refusedBy === undefined && !conn.refused ? served : [];
    },
    secureContext,
    onTerminated: (tlsSocket) => {
      conn.classifying = false;
      tlsSocket.on("error", () => conn.close("tls_error"));
      // A served name that never finishes its handshake is closed on the same bound.
      const timer = ctx.clock.setTimer(() => conn.close("tls_handshake"), cfg.tls!.handshake_timeout);
      tlsSocket.once("secure", () => timer.cancel());
      tlsSocket.once("close", () => timer.cancel());
      serve(tlsSocket);
    },
  });
  flow
    .then((outcome) => {
      if (outcome.kind === "terminated") return;
      ctx.logger.info("tls probe masked", { listener: cfg.name, remote_addr: conn.remote, outcome: outcome.kind, verdict: outcome.verdict.kind });
      recordMaskedProbe(conn, ctx, deadline);
    })
    .catch((err: unknown) => {
      ctx.logger.error("connection setup failed", { listener: cfg.name, error: err instanceof Error ? err.message : String(err) });
      conn.close("internal");
    });
}

/**
 * One penalty-box failure per connection that was not served, whatever the
 * path (masked, reject_handshake, drained), so every probe counts the same
 * for the operator. The outcome is known once the rejection is over; the
 * ban it may start refuses the address's served names from then on and
 * leaves masked connections alone.
 */
function recordMaskedProbe(conn: MaskedConnection, ctx: MaskingContext, deadline: RejectionDeadline): void {
  if (conn.admission.exempt) return;
  const key = conn.admission.key;
  whenReady(ctx.guard.recordAuthFailure(key), (r) => {
    if (r.banned) deadline.after(() => ctx.announceBan(key, conn.remote, r.bannedUntil, r.failures, r.shadow));
  });
}
