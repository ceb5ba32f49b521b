/**
 * The byte-cap stage of a gateway connection's relay (`[bandwidth]`): both
 * directions move through the connection's gates (createShapedPipe), so
 * neither runs faster than its caps allow. The stage is made when the
 * relay's stages are chosen (GatewayBandwidth.capStageFor) and holds the
 * connection's keys in the byte buckets until the relay closes it.
 */
import type { Readable, Writable } from "node:stream";
import type { ConnectionShaping } from "./bandwidth-registry.js";
import { type ShapedPipe, createShapedPipe } from "./shaped-pipe.js";

/** A relay direction: client to upstream, or upstream to client. */
export type CapDirection = "upload" | "download";

export class ByteCapStage {
  readonly kind = "byte-cap";
  private closed = false;

  constructor(
    private readonly shaping: ConnectionShaping,
    /** Called once, when the stage is closed. */
    private readonly onClose: () => void,
  ) {}

  /**
   * Moves `src` to `dst` no faster than the direction's gate grants, and
   * ends `dst` when `src` ends (half-close passed on). The returned pipe's
   * `done` rejects on any failure; the relay then tears both sides down.
   */
  move(direction: CapDirection, src: Readable, dst: Writable): ShapedPipe {
    return createShapedPipe(src, dst, this.shaping[direction]);
  }

  /** Gives the connection's keys back to the buckets (idempotent): the relay has ended. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.shaping.close();
    this.onClose();
  }
}
