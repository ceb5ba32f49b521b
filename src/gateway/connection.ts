/**
 * One admitted client connection: its sockets, its admission (released
 * exactly once) and its place in the registry that bans close by.
 */
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { GatewayContext } from "./context.js";
import type { Admission } from "./guard/connection-guard.js";
import type { Closable } from "./guard/connection-registry.js";
import type { ReadBufferPool } from "./read-pump.js";

export class Connection implements Closable {
  /** The stream the protocol runs on: the raw socket, or the TLS socket over it. */
  stream: Duplex;
  /** Who authenticated on this connection (connect listeners), once known. */
  identity: string | undefined;
  /**
   * Handed to the mask host (probe resistance). A ban does not close it: a
   * prober must see the mask site before, during and after its ban alike;
   * the relay's own caps bound it.
   */
  masked = false;
  /**
   * Not yet known to be served or masked (probe resistance is reading the
   * ClientHello). A ban then leaves it open and marks it `refused`: a probe
   * in flight when its address is banned must get what the mask site gives,
   * not a reset with no bytes, which would tell the gateway from the site.
   */
  classifying = false;
  /** Banned while classifying: nothing is served to it, whatever name it asks for. */
  refused = false;
  /** The upstream socket, once the listener opened it. Its relay's stages are chosen by relayStagesFor (relay.ts). */
  upstream: Socket | undefined;
  private finished = false;
  /** Upstream bytes already reported in `bytes` events, each way. */
  private reportedIn = 0;
  private reportedOut = 0;
  private readonly openedAt: number;

  constructor(
    readonly raw: Socket,
    readonly remote: string,
    readonly admission: Admission,
    readonly listener: string,
    private readonly ctx: GatewayContext,
    private readonly onEnd: (c: Connection) => void,
  ) {
    this.stream = raw;
    this.openedAt = ctx.clock.now();
    ctx.guard.registry.add(admission.key, this);
    // 'close' comes once; ended() is idempotent besides.
    raw.on("close", () => this.ended());
  }

  /** The gateway's shared read buffers, for the upstream socket's pump. */
  get readBuffers(): ReadBufferPool {
    return this.ctx.readBuffers;
  }

  /** The gateway's log, for the protocol handlers' refusal lines. */
  get logger(): GatewayContext["logger"] {
    return this.ctx.logger;
  }

  /** The gateway this connection belongs to, for choosing its relay's stages (relayStagesFor). */
  get context(): GatewayContext {
    return this.ctx;
  }

  /** Closes without a word: no banner, no error text on the wire. */
  close(reason: string): void {
    if (reason === "banned") {
      if (this.masked) return;
      if (this.classifying) {
        this.refused = true;
        return;
      }
    }
    this.upstream?.destroy();
    if (this.stream !== this.raw) this.stream.destroy();
    this.raw.destroy();
  }

  private ended(): void {
    if (this.finished) return;
    this.finished = true;
    this.upstream?.destroy();
    if (this.stream !== this.raw) this.stream.destroy();
    this.admission.release();
    this.ctx.guard.registry.delete(this.admission.key, this);
    const duration_ms = Math.max(0, Math.round(this.ctx.clock.now() - this.openedAt));
    this.ctx.logger.connClose({ remote_addr: this.remote, duration_ms, listener: this.listener });
    this.ctx.events.emit("close", { listener: this.listener, remote_addr: this.remote, duration_ms });
    this.reportBytes();
    this.onEnd(this);
  }

  /**
   * Reports the bytes relayed since the last report. The listener calls it
   * every few seconds while the connection is open, and it runs once more at
   * the end, so a long tunnel's bytes show while it lasts, not all at its close.
   */
  reportBytes(): void {
    // What reached and came back from the upstream is what was relayed (no request heads, no TLS framing).
    const up = this.upstream;
    if (up === undefined) return;
    const sent = up.bytesWritten - this.reportedIn;
    const received = up.bytesRead - this.reportedOut;
    if (sent > 0) {
      this.reportedIn += sent;
      this.ctx.events.emit("bytes", { listener: this.listener, direction: "in", bytes: sent });
    }
    if (received > 0) {
      this.reportedOut += received;
      this.ctx.events.emit("bytes", { listener: this.listener, direction: "out", bytes: received });
    }
  }
}
