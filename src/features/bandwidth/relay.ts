/** Relays bytes both ways between two sockets, each direction through its own shaped pipe. */
import type { Socket } from "node:net";
import type { Writable } from "node:stream";
import type { Gate } from "./gate.js";
import { createShapedPipe } from "./shaped-pipe.js";

export interface ShapedRelayGates {
  /** Client → upstream. */
  upload: Gate;
  /** Upstream → client. */
  download: Gate;
}

export interface ShapedRelay {
  /** Bytes moved client → upstream so far. */
  readonly uploaded: number;
  /** Bytes moved upstream → client so far. */
  readonly downloaded: number;
  /** Settles when both directions have ended cleanly, or rejects with the first failure (both sockets are then destroyed). */
  readonly done: Promise<void>;
  /** Tears both sockets down now. */
  destroy(): void;
}

/**
 * Relays bytes both ways between two connected sockets, each direction
 * through its own shaped pipe. A FIN on one side is passed on as a FIN to
 * the other (half-close; both sockets need `allowHalfOpen: true` for the
 * other direction to keep flowing); an error or reset on either side
 * destroys both. The gates are closed when their direction ends.
 *
 * `toClient` is where upstream's bytes go once the download gate has let
 * them through: the client itself (the default) or a writer in front of it
 * (for instance a paced one), which must end the client when it is ended
 * and go down with it.
 */
export function relayShaped(client: Socket, upstream: Socket, gates: ShapedRelayGates, toClient: Writable = client): ShapedRelay {
  const up = createShapedPipe(client, upstream, gates.upload);
  const down = createShapedPipe(upstream, toClient, gates.download);
  const destroy = (): void => {
    up.stop();
    down.stop();
    client.destroy();
    upstream.destroy();
  };
  // Sockets already listened to by the pipes still need an error listener of their own:
  // a pipe detaches when it finishes, and an 'error' with no listener would crash the process.
  const swallow = (): void => {};
  client.on("error", swallow);
  upstream.on("error", swallow);
  const done = Promise.all([up.done, down.done]).then(
    () => undefined,
    (e: unknown) => {
      destroy();
      throw e;
    },
  );
  done.catch(() => {});
  return {
    get uploaded() {
      return up.bytes;
    },
    get downloaded() {
      return down.bytes;
    },
    done,
    destroy,
  };
}
