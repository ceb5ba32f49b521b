import type { Readable, Writable } from "node:stream";
import type { Gate } from "./gate.js";

/** The most bytes asked of a gate per request (one socket read is at most 64 KiB). */
const MAX_ASK = 64 * 1024;

export interface ShapedPipe {
  /** Bytes written to the destination so far. */
  readonly bytes: number;
  /** Settles once the source ended and every byte was handed to the destination (then `dst.end()` was called), or with the first error. */
  readonly done: Promise<void>;
  /** Stops moving bytes and releases the gate; destroys neither stream. */
  stop(): void;
}

export interface ShapedPipeOptions {
  /** End the destination's writable side when the source ends (default true: TCP half-close is passed on). */
  end?: boolean;
}

/**
 * Moves bytes from `src` to `dst` no faster than `gate` grants. The source is
 * read in paused mode and only the granted number of bytes is taken out of
 * it, so whatever the gate holds back stays in the source's own bounded
 * buffer (its readableHighWaterMark, plus one socket read) and then in the
 * kernel: the sender feels TCP backpressure, and the pipe holds no buffer of
 * its own. A grant larger than the chunk at hand never happens (the ask is
 * at most what the source holds), and a chunk larger than a grant is simply
 * taken in several grants, so a large write is paced, never let through.
 * When `dst` is full the pipe waits for 'drain' before asking again.
 *
 * Errors are not handled here beyond stopping: the caller (see
 * relayShaped) decides what a failure of either side means for the other.
 */
export function createShapedPipe(src: Readable, dst: Writable, gate: Gate, o: ShapedPipeOptions = {}): ShapedPipe {
  const endDst = o.end ?? true;
  let bytes = 0;
  let asking = false;
  let waitingDrain = false;
  let ended = false;
  let finished = false;
  let resolveDone!: () => void;
  let rejectDone!: (e: Error) => void;
  const done = new Promise<void>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  // A pipe whose caller only listens to streams must not raise an unhandled rejection.
  done.catch(() => {});

  const move = (granted: number): boolean => {
    const chunk = src.read(granted) as Buffer | null;
    if (chunk === null) return true; // destroyed meanwhile; 'close' finishes the pipe
    bytes += chunk.length;
    return dst.write(chunk);
  };

  const onGrant = (granted: number): void => {
    asking = false;
    if (finished) return;
    if (move(granted)) pump();
    else waitDrain();
  };

  const waitDrain = (): void => {
    waitingDrain = true;
    dst.once("drain", onDrain);
  };

  const onDrain = (): void => {
    waitingDrain = false;
    pump();
  };

  function pump(): void {
    while (!finished && !asking && !waitingDrain) {
      if (dst.destroyed || dst.writableEnded) return finish(new Error("destination closed"));
      const n = src.readableLength;
      if (n === 0) {
        if (ended) return finish();
        // Lets a source that has reached EOF emit 'end'; otherwise just waits for 'readable'.
        src.read(0);
        return;
      }
      asking = true;
      const granted = gate.acquire(Math.min(n, MAX_ASK), onGrant);
      if (granted === 0) return; // onGrant comes later
      asking = false;
      if (!move(granted)) return waitDrain();
    }
  }

  const onEnd = (): void => {
    ended = true;
    pump();
  };
  const onError = (e: Error): void => finish(e);
  const onClose = (): void => {
    if (!finished) finish(ended && src.readableLength === 0 ? undefined : new Error("source closed before its end"));
  };
  const onDstClose = (): void => {
    if (!finished) finish(new Error("destination closed"));
  };

  function finish(err?: Error): void {
    if (finished) return;
    finished = true;
    gate.close();
    for (const [stream, event, fn] of listeners) stream.off(event, fn);
    dst.off("drain", onDrain);
    if (err) return rejectDone(err);
    if (endDst) dst.end();
    resolveDone();
  }

  // Every listener the pipe holds while it runs ('drain' is taken once, when dst is full).
  const listeners: ReadonlyArray<readonly [Readable | Writable, string, Parameters<Readable["off"]>[1]]> = [
    [src, "readable", pump],
    [src, "end", onEnd],
    [src, "error", onError],
    [src, "close", onClose],
    [dst, "error", onError],
    [dst, "close", onDstClose],
  ];
  for (const [stream, event, fn] of listeners) stream.on(event, fn);
  queueMicrotask(pump);

  return {
    get bytes() {
      return bytes;
    },
    done,
    stop: () => finish(new Error("stopped")),
  };
}
