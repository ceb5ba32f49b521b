/**
 * Relays bytes both ways between two connected sockets. `pipe` carries the
 * data: it moves each chunk as Node received it (no copies, no per-chunk
 * allocations of ours) and pauses the reader whenever the writer's buffer is
 * full, so backpressure holds in both directions. Half-close is passed on:
 * when one side finishes sending, the other side's write half is ended and
 * data keeps flowing the other way (sockets must allow half-open). An error
 * or reset on either side, or no bytes either way for `idleTimeoutMs`,
 * destroys both.
 */
import type { Duplex } from "node:stream";

export interface RelayOptions {
  idleTimeoutMs: number;
  /** Called once, when both sides are closed. */
  onClosed?: () => void;
}

interface TimeoutCapable extends Duplex {
  setTimeout?(ms: number, cb?: () => void): unknown;
}

export function relay(client: TimeoutCapable, upstream: TimeoutCapable, o: RelayOptions): void {
  let open = 2;
  const closed = (): void => {
    if (--open === 0) o.onClosed?.();
  };
  const killBoth = (): void => {
    client.destroy();
    upstream.destroy();
  };
  const wire = (self: TimeoutCapable, other: TimeoutCapable): void => {
    self.on("error", killBoth);
    self.once("close", () => {
      // A side that closed after sending its end has half-closed cleanly: let the other flush and finish.
      // Any other close (reset, error, destroy) takes the other side down too.
      if (self.readableEnded && self.writableFinished) other.end();
      else other.destroy();
      closed();
    });
    // Socket timeouts count activity in both directions on that socket.
    self.setTimeout?.(o.idleTimeoutMs, killBoth);
  };
  wire(client, upstream);
  wire(upstream, client);
  client.pipe(upstream);
  upstream.pipe(client);
}
