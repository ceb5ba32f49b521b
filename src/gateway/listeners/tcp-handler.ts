/**
 * The `tcp` listener's protocol: none. An admitted connection (after TLS
 * termination, when configured) is relayed to the fixed upstream.
 */
import { systemClock } from "../../core/clock.js";
import type { ListenerConfig } from "../config/schema.js";
import type { Connection } from "../connection.js";
import { connectPumped } from "../read-pump.js";
import { relay, relayStagesFor } from "../relay.js";

export function relayToUpstream(conn: Connection, cfg: ListenerConfig): void {
  const target = cfg.upstream!;
  const up = connectPumped({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true }, conn.readBuffers);
  conn.upstream = up;
  let connected = false;
  // An upstream that refuses, cannot be reached or does not answer in time: one `deny reason=no_route` line.
  const noRoute = (why: string): void => {
    if (connected) return;
    connected = true;
    conn.logger.deny({ remote_addr: conn.remote, listener: cfg.name, reason: "no_route", detail: why, user: conn.identity });
  };
  const timer = systemClock.setTimer(() => {
    noRoute("connect_timeout");
    up.destroy();
  }, cfg.connect_timeout);
  // Each comes at most once: plain listeners do what `once` would, without its wrapper.
  up.on("connect", () => {
    connected = true;
    timer.cancel();
  });
  up.on("error", (err: NodeJS.ErrnoException) => noRoute(err.code ?? "connect_failed"));
  up.on("close", () => timer.cancel());
  // Writes before the upstream connects are queued by the socket; backpressure applies as usual.
  relay(conn.stream, up, relayStagesFor(conn), { idleTimeoutMs: cfg.idle_timeout });
}
