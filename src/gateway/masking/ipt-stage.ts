/**
 * Inter-packet timing in the gateway (`probe_resistance.ipt.enabled`): on a
 * listener that enables it, what the upstream sends toward the client goes
 * through an IptWriter, so a tunnel (after CONNECT authentication) or a
 * terminated TLS connection does not forward each chunk the instant it
 * arrives. The decision is made when the upstream is assigned to the
 * connection and travels on the upstream socket to the relay, like the
 * bandwidth shaper's plan.
 */
import type { Socket } from "node:net";
import type { Duplex, Writable } from "node:stream";
import { systemRng } from "../../core/random.js";
import { IptWriter } from "../../probe/ipt.js";
import type { GatewayContext } from "../context.js";

/** Bytes one paced connection holds before its upstream is paused (the writer's buffer holds as much again). */
export const IPT_HELD_BYTES = 64 * 1024;

/** A symbol, not a string key: nothing else can collide with it or see it in the socket's own fields. */
const PACING = Symbol("portcullis.ipt-pacing");

interface Paced {
  [PACING]?: GatewayContext;
}

/** Whether `conn`'s listener enables IPT; if so, marks `upstream` for the relay. (Only the listener's name: the connection imports this stage, not the other way round.) */
export function attachIpt(conn: { readonly listener: string }, upstream: Socket, ctx: GatewayContext): void {
  const cfg = ctx.config.listener.find((l) => l.name === conn.listener);
  if (cfg?.probe_resistance?.ipt.enabled === true) (upstream as Paced)[PACING] = ctx;
}

/**
 * Where the relay writes what `upstream` sends: `client` itself, or an
 * IptWriter in front of it when the upstream was marked. The writer ends
 * the client after flushing (half-close kept) and follows the client down
 * when it fails or closes; its own errors close the client, which the relay
 * already watches.
 */
export function pacedTowardClient(client: Duplex, upstream: Duplex): Writable {
  const p = upstream as Paced;
  const ctx = p[PACING];
  if (ctx === undefined) return client;
  delete p[PACING];
  const writer = new IptWriter(client, { clock: ctx.clock, rng: ctx.rng ?? systemRng, highWaterMark: IPT_HELD_BYTES });
  writer.on("error", () => client.destroy());
  return writer;
}
