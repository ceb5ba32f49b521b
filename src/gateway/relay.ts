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
 *
 * A relay is built from the connection's stages (RelayStages), each of which
 * is independent of the others, so one connection can have any of them at
 * once: the byte caps' gates on both directions (bandwidth), and the writer
 * upstream's bytes end in (the client, or an IptWriter in front of it).
 */
import type { Socket } from "node:net";
import type { Duplex, Writable } from "node:stream";
import { relayWithShaping, takeShapingPlan, type ShapingPlan } from "./bandwidth/shaped-relay.js";
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

/** What one connection's relay is made of, beyond moving bytes. */
export interface RelayStages {
  /** Byte caps (`[bandwidth]`): both directions pass through the connection's gates. */
  readonly shaping: ShapingPlan | undefined;
  /** Where upstream's bytes are written (after the gates, if any): the client, or a paced writer in front of it (probe_resistance.ipt). */
  readonly toClient: Writable;
}

/**
 * The stages the connection chose when it got its upstream (Connection.upstream
 * puts them on the upstream socket); each is taken off it, so it serves one relay.
 */
export function relayStagesOf(client: Duplex, upstream: Duplex): RelayStages {
  return { shaping: takeShapingPlan(upstream), toClient: pacedTowardClient(client, upstream) };
}

export function relay(client: Counted, upstream: Counted, o: RelayOptions): void {
  const stages = relayStagesOf(client, upstream);
  if (stages.shaping !== undefined) {
    relayWithShaping(client, upstream as Socket, stages.shaping, { ...o, toClient: stages.toClient });
    return;
  }
  new PlainRelay(client, upstream, o, stages.toClient).start();
}

/**
 * One unshaped relay. Its state is a few fields of one object and its
 * listeners are small arrows made here, not named closures: this runs for
 * every connection, and each closure given a name costs a property
 * definition where names are kept (tsx).
 */
class PlainRelay {
  private open = 2;
  private lastSeen = -1;
  private quietMs = 0;
  private idle: NodeJS.Timeout | undefined;
  constructor(
    private readonly client: Counted,
    private readonly upstream: Counted,
    private readonly o: RelayOptions,
    /** Where upstream's bytes are written: the client, or a paced writer in front of it (RelayStages.toClient). */
    private readonly toClient: Writable,
  ) {}

  start(): void {
    const { client, upstream, toClient } = this;
    const step = Math.max(25, this.o.idleTimeoutMs / CHECKS_PER_PERIOD);
    this.idle = setInterval(() => this.check(step), step);
    this.idle.unref();
    client.on("error", () => this.killBoth());
    upstream.on("error", () => this.killBoth());
    // 'close' comes once per stream: a plain listener does what `once` would, without its wrapper.
    client.on("close", () => this.sideClosed(client, upstream, upstream));
    upstream.on("close", () => this.sideClosed(upstream, client, toClient));
    // Each direction whose reader has a pump writes every read straight on (src/gateway/read-pump.ts);
    // the others pipe. A paced writer toward the client needs the piped path.
    const fromClient = pumpOf(client);
    if (fromClient !== undefined) fromClient.direct(upstream);
    else client.pipe(upstream);
    const fromUpstream = toClient === client ? pumpOf(upstream) : undefined;
    if (fromUpstream !== undefined) fromUpstream.direct(client);
    else upstream.pipe(toClient);
  }

  /** Every byte either way is read by one of the two sockets. */
  private check(step: number): void {
    const seen = (this.client.bytesRead ?? 0) + (this.upstream.bytesRead ?? 0);
    if (seen !== this.lastSeen) {
      this.lastSeen = seen;
      this.quietMs = 0;
      return;
    }
    this.quietMs += step;
    if (this.quietMs >= this.o.idleTimeoutMs) this.killBoth();
  }

  private sideClosed(self: Counted, other: Counted, otherWriter: Writable): void {
    // A side that closed after sending its end has half-closed cleanly: let the other flush and finish.
    // Any other close (reset, error, destroy) takes the other side down too.
    // (end() on a stream already ended builds an error object with a stack: skip it when there is nothing to do.)
    if (other.destroyed) {
      // nothing left to close
    } else if (self.readableEnded && self.writableFinished) {
      if (!otherWriter.writableEnded) otherWriter.end();
    } else other.destroy();
    if (--this.open > 0) return;
    clearInterval(this.idle);
    this.o.onClosed?.();
  }

  private killBoth(): void {
    clearInterval(this.idle);
    this.client.destroy();
    this.upstream.destroy();
  }
}
