/**
 * The seam a message store talks through: anything that can post a message
 * and deliver the ones that arrive. Adapters below fit the three channels
 * Node offers between a primary and its workers; a test can pass any pair
 * of objects with these two methods.
 */
export interface MessageChannel {
  postMessage(message: unknown): void;
  /** Calls `listener` with every message that arrives; returns the unsubscribe. */
  onMessage(listener: (message: unknown) => void): () => void;
}

/** A worker_threads MessagePort or Worker (or `parentPort` inside a worker thread). */
export interface PortLike {
  postMessage(message: unknown): void;
  on(event: "message", listener: (message: unknown) => void): unknown;
  off(event: "message", listener: (message: unknown) => void): unknown;
}

export function portChannel(port: PortLike): MessageChannel {
  return {
    postMessage: (m) => port.postMessage(m),
    onMessage(listener) {
      port.on("message", listener);
      return () => port.off("message", listener);
    },
  };
}

/**
 * A process IPC channel: a ChildProcess from fork(), a node:cluster Worker
 * (in the primary), or `process` itself inside a forked or cluster worker.
 * A message sent while the channel is closed is dropped (the caller's
 * deadline turns it into a store failure).
 */
export interface ProcessLike {
  send?(message: unknown, callback?: (err: Error | null) => void): boolean;
  on(event: "message", listener: (message: unknown) => void): unknown;
  off(event: "message", listener: (message: unknown) => void): unknown;
}

export function processChannel(p: ProcessLike): MessageChannel {
  return {
    postMessage(m) {
      try {
        p.send?.(m, () => {
          // A send error (channel closed) is a lost message: the deadline reports it.
        });
      } catch {
        // Same: the channel is gone.
      }
    },
    onMessage(listener) {
      p.on("message", listener);
      return () => p.off("message", listener);
    },
  };
}
