/**
 * Relays bytes both ways between a client and its upstream: one pipeline,
 * a reader (the pump) and then the stages the connection's configuration
 * chose, in a fixed order, each with one job:
 *
 *   client   -> [1 byte-cap gate: upload]   -> upstream
 *   upstream -> [1 byte-cap gate: download] -> [2 inter-packet timing] -> client
 *
 * 1. byte-cap gate (`[bandwidth]`, ByteCapStage in bandwidth/cap-stage.ts):
 *    each direction moves only what the connection's gates grant;
 * 2. inter-packet timing (`probe_resistance.ipt`, IptStage in probe/ipt.ts):
 *    what passed toward the client is written through a paced writer.
 * TLS record sizing (`probe_resistance.drs`) is not a relay stage: it is
 * set on the terminated TLS socket, which is the relay's client stream.
 * Masked connections run the same IPT stage inside the mask relay
 * (probe/mask-relay.ts), which has its own caps.
 *
 * The stages are chosen once, by relayStagesFor, where the listener starts
 * the relay, and passed to relay() as a plain object: any combination works,
 * and nothing is kept on the sockets.
 *
 * Without a gate, a direction whose reader has a read pump
 * (read-pump.ts: plain tcp clients and every upstream) and no stage after
 * it writes each read straight on from a buffer the gateway owns, with no
 * allocation per chunk; any other direction uses `pipe`. Either way the
 * reader waits while the writer is behind, so backpressure holds in both
 * directions. Half-close is passed on: when one side finishes sending, the
 * other side's write half is ended and data keeps flowing the other way
 * (sockets must allow half-open). An error or reset on either side, or no
 * bytes either way for `idleTimeoutMs`, destroys both.
 *
 * Idleness is checked by one coarse per-connection timer reading byte
 * counters, not with socket.setTimeout: that re-arms a timer on every read
 * and write, and measured on loopback it cost a third of the relay's
 * single-stream throughput.
 */
import type { Duplex, Writable } from "node:stream";
import type { ShapedPipe } from "../features/bandwidth/shaped-pipe.js";
import type { IptStage } from "../features/probe-resistance/ipt.js";
import type { ByteCapStage } from "../features/bandwidth/cap-stage.js";
import type { Connection } from "./connection.js";
import { iptStageFor } from "../features/probe-resistance/ipt-stage.js";
import { pumpOf } from "./read-pump.js";

export interface RelayOptions {
  idleTimeoutMs: number;
  /** Called once, when both sides are closed. */
  onClosed?: () => void;
}

/** The stages of one connection's relay, in their order; an absent stage is not in the path. */
export interface RelayStages {
  /** 1. Byte caps (`[bandwidth]`): both directions pass through the connection's gates. */
  readonly byteCap?: ByteCapStage | undefined;
  /** 2. Inter-packet timing (`probe_resistance.ipt`): upstream's bytes reach the client through a paced writer. */
  readonly ipt?: IptStage | undefined;
}

/** A relay with no stage: just the pump. */
export const NO_STAGES: RelayStages = Object.freeze({});

/**
 * The stages `conn`'s configuration selects for its relay. Called once per
 * connection, as its relay starts: a byte-cap stage holds the connection's
 * bucket keys from here until the relay ends.
 */
export function relayStagesFor(conn: Connection): RelayStages {
  const ctx = conn.context;
  const byteCap = ctx.bandwidth.capStageFor(conn);
  const ipt = iptStageFor(ctx.config.listener.find((l) => l.name === conn.listener), ctx);
  return byteCap === undefined && ipt === undefined ? NO_STAGES : { byteCap, ipt };
}

interface Counted extends Duplex {
  readonly bytesRead?: number;
}

/** Idle checks per idle period: a quiet connection is closed between idleTimeoutMs and 1.25 × idleTimeoutMs. */
const CHECKS_PER_PERIOD = 4;

export function relay(client: Counted, upstream: Counted, stages: RelayStages, o: RelayOptions): void {
  new Relay(client, upstream, stages, o).start();
}

/**
 * One relay. Its state is a few fields of one object and its listeners are
 * small arrows made here, not named closures: this runs for every
 * connection, and each closure given a name costs a property definition
 * where names are kept (tsx).
 */
class Relay {
  private open = 2;
  private lastSeen = -1;
  private quietMs = 0;
  private idle: NodeJS.Timeout | undefined;
  /** The gated directions (byte-cap stage), whose moved bytes count as activity. */
  private up: ShapedPipe | undefined;
  private down: ShapedPipe | undefined;
  constructor(
    private readonly client: Counted,
    private readonly upstream: Counted,
    private readonly stages: RelayStages,
    private readonly o: RelayOptions,
  ) {}

  start(): void {
    const { client, upstream, stages } = this;
    const step = Math.max(25, this.o.idleTimeoutMs / CHECKS_PER_PERIOD);
    this.idle = setInterval(() => this.check(step), step);
    this.idle.unref();
    // Stage 2 (IPT) takes the client's place as the end of the upstream -> client path.
    const toClient: Writable = stages.ipt === undefined ? client : stages.ipt.towardClient(client);
    client.on("error", () => this.killBoth());
    upstream.on("error", () => this.killBoth());
    // 'close' comes once per stream: a plain listener does what `once` would, without its wrapper.
    client.on("close", () => this.sideClosed(client, upstream, upstream));
    upstream.on("close", () => this.sideClosed(upstream, client, toClient));
    const cap = stages.byteCap;
    if (cap !== undefined) {
      // Stage 1 (byte caps): each direction through its gate; a failure of either takes both sides down.
      this.up = cap.move("upload", client, upstream);
      this.down = cap.move("download", upstream, toClient);
      this.up.done.catch(() => this.killBoth());
      this.down.done.catch(() => this.killBoth());
      return;
    }
    // No gate: a direction whose reader has a pump and nothing after it writes every read straight on
    // (read-pump.ts); the others pipe.
    const fromClient = pumpOf(client);
    if (fromClient !== undefined) fromClient.direct(upstream);
    else client.pipe(upstream);
    const fromUpstream = toClient === client ? pumpOf(upstream) : undefined;
    if (fromUpstream !== undefined) fromUpstream.direct(client);
    else upstream.pipe(toClient);
  }

  /** Every byte either way is read by one of the two sockets, or moved by a gate that held it back. */
  private check(step: number): void {
    let seen = (this.client.bytesRead ?? 0) + (this.upstream.bytesRead ?? 0);
    if (this.up !== undefined) seen += this.up.bytes + this.down!.bytes;
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
    this.stages.byteCap?.close();
    this.o.onClosed?.();
  }

  private killBoth(): void {
    clearInterval(this.idle);
    this.client.destroy();
    this.upstream.destroy();
  }
}
