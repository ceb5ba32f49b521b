/**
 * Relays bytes both ways between two connected sockets. A direction whose
 * reader has a read pump (src/gateway/read-pump.ts: plain tcp clients and
 * every upstream) writes each read straight on from a buffer the gateway
 * owns, with no allocation per chunk; any other direction uses `pipe`,
 * which moves each chunk as Node received it. Either way the reader waits
 * while the writer is behind, so backpressure holds in both directions. Half-close is passed on:
 * when one side finishes sending, the other side's write half is ended and
 * data keeps flowing the other way (sockets must allow half-open). An error
 * or reset on either side, or no bytes either way for `idleTimeoutMs`,
 * destroys both.
 *
 * Idleness is checked by a coarse per-connection timer reading the sockets'
 * byte counters, not with socket.setTimeout: that re-arms a timer on every
 * read and write, and measured on loopback it cost a third of the relay's
 * single-stream throughput.
 */
import type { Socket } from "node:net";
import type { Duplex, Writable } from "node:stream";
import { relayWithShaping, takeShapingPlan } from "./bandwidth/shaped-relay.js";
import { pacedTowardClient } from "./masking/ipt-stage.js";
import { pumpOf } from "./read-pump.js";

export interface RelayOptions {
  idleTimeoutMs: number;
  /** Called once, when both sides are closed. */
  onClosed?: () => void;
}

interface Counted extends Duplex {
  readonly bytesRead?: number;
}

/** Idle checks per idle period: a quiet connection is closed between idleTimeoutMs and 1.25 × idleTimeoutMs. */
const CHECKS_PER_PERIOD = 4;

export function relay(client: Counted, upstream: Counted, o: RelayOptions): void {
  // A connection some bandwidth cap applies to carries its shaping on the upstream socket.
  const plan = takeShapingPlan(upstream);
  if (plan !== undefined) return relayWithShaping(client, upstream as Socket, plan, o);
  // Inter-packet timing (probe_resistance.ipt): upstream -> client writes may go through a paced writer.
  const toClient = pacedTowardClient(client, upstream);
  let open = 2;
  const step = Math.max(25, o.idleTimeoutMs / CHECKS_PER_PERIOD);
  let lastSeen = -1;
  let quietMs = 0;
  // Every byte either way is read by one of the two sockets.
  const idle = setInterval(() => {
    const seen = (client.bytesRead ?? 0) + (upstream.bytesRead ?? 0);
    if (seen !== lastSeen) {
      lastSeen = seen;
      quietMs = 0;
      return;
    }
    quietMs += step;
    if (quietMs >= o.idleTimeoutMs) killBoth();
  }, step);
  idle.unref();
  const closed = (): void => {
    if (--open > 0) return;
    clearInterval(idle);
    o.onClosed?.();
  };
  const killBoth = (): void => {
    clearInterval(idle);
    client.destroy();
    upstream.destroy();
  };
  const wire = (self: Counted, other: Counted, otherWriter: Writable = other): void => {
    self.on("error", killBoth);
    self.once("close", () => {
      // A side that closed after sending its end has half-closed cleanly: let the other flush and finish.
      // Any other close (reset, error, destroy) takes the other side down too.
      // (end() on a stream already ended builds an error object with a stack: skip it when there is nothing to do.)
      if (other.destroyed) {
        // nothing left to close
      } else if (self.readableEnded && self.writableFinished) {
        if (!otherWriter.writableEnded) otherWriter.end();
      } else other.destroy();
      closed();
    });
  };
  wire(client, upstream);
  wire(upstream, client, toClient);
  // Each direction whose reader has a pump writes every read straight on (src/gateway/read-pump.ts);
  // the others pipe. A paced writer toward the client needs the piped path.
  const fromClient = pumpOf(client);
  if (fromClient !== undefined) fromClient.direct(upstream);
  else client.pipe(upstream);
  const fromUpstream = toClient === client ? pumpOf(upstream) : undefined;
  if (fromUpstream !== undefined) fromUpstream.direct(client);
  else upstream.pipe(toClient);
}
