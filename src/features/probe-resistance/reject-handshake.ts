/**
 * The `reject_handshake` answer to a ClientHello for a name the listener
 * does not serve: one fatal unrecognized_name alert, as nginx's
 * ssl_reject_handshake does, and nothing that names the gateway.
 */
import type net from "node:net";
import type { RejectionDeadline } from "./rejection-delay.js";

/** RFC 8446 6: AlertLevel.fatal. */
const ALERT_FATAL = 2;
/** RFC 6066 3: unrecognized_name(112). */
const ALERT_UNRECOGNIZED_NAME = 112;

/**
 * The alert record. The record-layer version is TLS 1.2 (0x0303), which every
 * TLS 1.2/1.3 client accepts before a version is negotiated and which is what
 * OpenSSL-based servers put on an alert that answers a TLS 1.2+ ClientHello.
 */
export function unrecognizedNameAlert(): Buffer {
  return Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, ALERT_FATAL, ALERT_UNRECOGNIZED_NAME]);
}

/**
 * Writes the alert (at `deadline`, if given: a configured delay holds back
 * the first byte) and closes the connection with a FIN right after it.
 * Nothing the client sends afterwards is answered.
 */
export function rejectHandshake(socket: net.Socket, deadline?: RejectionDeadline): void {
  socket.on("error", () => socket.destroy());
  // Whatever follows the ClientHello is read and dropped so the close is a FIN, not a reset.
  socket.on("data", () => {});
  socket.resume();
  // destroySoon: FIN once the alert is flushed, then release the socket whatever the client does.
  const answer = () => {
    if (socket.destroyed) return;
    socket.write(unrecognizedNameAlert());
    socket.destroySoon();
  };
  if (deadline === undefined || deadline.due) answer();
  else deadline.after(answer);
}
