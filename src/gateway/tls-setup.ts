/**
 * TLS on an already admitted socket. The guard runs on the raw TCP
 * connection first, so a refused client never costs a handshake.
 */
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import type tls from "node:tls";
import { tlsModule } from "../core/lazy-tls.js";
import type { TlsConfig } from "./config/schema.js";

export function secureContextOf(t: TlsConfig): tls.SecureContext {
  return tlsModule().createSecureContext({
    cert: readFileSync(t.cert),
    key: readFileSync(t.key),
    ca: t.client_ca === undefined ? undefined : readFileSync(t.client_ca),
    minVersion: "TLSv1.2",
  });
}

/**
 * Whether the client's certificate chains to client_ca. A TLSSocket made
 * around an accepted socket (so the guard could run first) is not a
 * tls.Server connection, and Node only fills in `authorized` for those; the
 * verification result itself is on the socket's handle, where tls.Server
 * reads it. Anything unexpected reads as unverified.
 */
function chainVerified(socket: tls.TLSSocket): boolean {
  const handle = (socket as unknown as { _handle?: { verifyError?: () => Error | null } })._handle;
  if (typeof handle?.verifyError !== "function") return false;
  return handle.verifyError() === null;
}

export interface Handshake {
  socket: tls.TLSSocket;
  /** The verified client certificate, if one was presented and chains to client_ca. */
  peer: import("node:crypto").X509Certificate | undefined;
}

/** Runs the server handshake on `raw`; resolves undefined on failure or timeout (the socket is then destroyed). */
export function serverHandshake(raw: Socket, t: TlsConfig, ctx: tls.SecureContext, setTimer: (fn: () => void, ms: number) => { cancel(): void }): Promise<Handshake | undefined> {
  const mtls = t.client_ca !== undefined;
  const socket = new (tlsModule().TLSSocket)(raw, { isServer: true, secureContext: ctx, requestCert: mtls, rejectUnauthorized: mtls && t.require_client_cert });
  return new Promise((resolve) => {
    const timer = setTimer(() => fail(), t.handshake_timeout);
    const fail = (): void => {
      timer.cancel();
      socket.destroy();
      raw.destroy();
      resolve(undefined);
    };
    socket.once("error", fail);
    socket.once("close", fail);
    socket.once("secure", () => {
      timer.cancel();
      socket.removeListener("error", fail);
      socket.removeListener("close", fail);
      socket.on("error", () => socket.destroy());
      let peer: Handshake["peer"];
      if (mtls && chainVerified(socket)) peer = socket.getPeerX509Certificate();
      if (mtls && t.require_client_cert && peer === undefined) return fail();
      resolve({ socket, peer });
    });
  });
}
