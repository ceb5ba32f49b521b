/**
 * Probe resistance on a TLS `tcp` listener: the ClientHello is peeked before
 * any TLS byte is sent. A hello naming one of `server_names` is terminated
 * here (with dynamic record sizing unless `drs = false`) and relayed to the
 * upstream as usual; anything else (another name, no name, not TLS) is
 * spliced raw to the mask host, or, with unknown_sni_action =
 * "reject_handshake", answered with the alert a web server gives. Rejections
 * complete no earlier than the sampled delay. Probing costs the prober as on
 * a `connect` listener: every connection that is not served records one
 * failure in the penalty box.
 */
import type net from "node:net";
import type tls from "node:tls";
import type { ListenerConfig } from "../config/schema.js";
import { handleMaskedTlsConnection } from "../../probe/masked-tls-listener.js";
import type { RejectionDeadline } from "../../probe/rejection-delay.js";
import type { Connection } from "../connection.js";
import type { GatewayContext } from "../context.js";
import { maskOptionsOf, rejectionDeadlineOf } from "./connect-masker.js";

/** Whether a listener's TLS connections go through the ClientHello peek. */
export function masksTls(cfg: ListenerConfig): boolean {
  return cfg.kind === "tcp" && cfg.tls !== undefined && cfg.probe_resistance !== undefined;
}

/**
 * Runs the peek on an admitted raw socket. `serve` receives the server-side
 * TLS socket of a served name; the listener's protocol runs on it from there.
 */
export function acceptMaskedTls(conn: Connection, cfg: ListenerConfig, secureContext: tls.SecureContext, ctx: GatewayContext, serve: (tlsSocket: tls.TLSSocket) => void): void {
  const p = cfg.probe_resistance!;
  const { mask, clock, ...maskLimits } = maskOptionsOf(p, ctx);
  const deadline = rejectionDeadlineOf(p, ctx);
  void handleMaskedTlsConnection(conn.raw as net.Socket, {
    names: cfg.server_names ?? [],
    secureContext,
    mask,
    maskLimits,
    unknownSniAction: p.unknown_sni_action,
    drs: p.drs,
    // The hello must arrive within the handshake bound, like any TLS handshake on this listener.
    peekTimeoutMs: cfg.tls!.handshake_timeout,
    deadline,
    clock,
    onTerminated: (tlsSocket) => {
      tlsSocket.on("error", () => conn.close("tls_error"));
      // A served name that never finishes its handshake is closed on the same bound.
      const timer = ctx.clock.setTimer(() => conn.close("tls_handshake"), cfg.tls!.handshake_timeout);
      tlsSocket.once("secure", () => timer.cancel());
      tlsSocket.once("close", () => timer.cancel());
      serve(tlsSocket);
    },
  })
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
 * path (masked, reject_handshake, closed), so every probe costs the same.
 * The outcome is known once the rejection is over, which is never before the
 * deadline; a ban it starts is still announced through the deadline so the
 * ban step looks like any other probe.
 */
function recordMaskedProbe(conn: Connection, ctx: GatewayContext, deadline: RejectionDeadline): void {
  if (conn.admission.exempt) return;
  const key = conn.admission.key;
  const r = ctx.guard.recordAuthFailure(key);
  if (r.banned) deadline.after(() => ctx.announceBan(key, conn.remote, r.bannedUntil, r.failures, r.shadow));
}
