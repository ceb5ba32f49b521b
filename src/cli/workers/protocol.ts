/**
 * The control messages between the primary and its workers, on the cluster
 * IPC channel they share with the message store (whose messages carry `pc`;
 * these carry `pw`, so each side picks out its own).
 */
export const CONTROL = 1;

/** Primary to worker. */
export type ToWorker =
  | { pw: typeof CONTROL; t: "stop" } // drain up to shutdown_timeout, then exit
  | { pw: typeof CONTROL; t: "cut" } // cut what is still open (a second signal)
  | { pw: typeof CONTROL; t: "retire" } // stop accepting, exit once the last connection ends (rolling restart)
  | { pw: typeof CONTROL; t: "reload"; id: number }
  | { pw: typeof CONTROL; t: "metrics"; id: number } // this worker's registry, as JSON
  | { pw: typeof CONTROL; t: "cluster-metrics"; id: number; text: string } // the aggregation asked for
  | { pw: typeof CONTROL; t: "reloaded-all"; id: number; ok: boolean; problems: string[] }; // the outcome of a reload asked for

/** Worker to primary. */
export type FromWorker =
  | { pw: typeof CONTROL; t: "ready" }
  | { pw: typeof CONTROL; t: "stopped"; drained: number; cut: number }
  | { pw: typeof CONTROL; t: "reloaded"; id: number; ok: boolean; problems: string[] }
  | { pw: typeof CONTROL; t: "metrics"; id: number; json: unknown[] }
  | { pw: typeof CONTROL; t: "cluster-metrics?"; id: number }
  | { pw: typeof CONTROL; t: "reload-all?"; id: number }; // the admin API's POST /v1/reload

export function isControl(m: unknown): m is { pw: typeof CONTROL; t: string } {
  return typeof m === "object" && m !== null && (m as { pw?: unknown }).pw === CONTROL && typeof (m as { t?: unknown }).t === "string";
}

/** Environment a worker is forked with: its slot (1..N) and whether it serves the admin listener. */
export const SLOT_ENV = "PORTCULLIS_WORKER_SLOT";
export const ADMIN_ENV = "PORTCULLIS_WORKER_ADMIN";

/**
 * Set to "1" in a worker's environment (by the primary, from reuse_port =
 * true) when every worker binds the
 * listeners itself with SO_REUSEPORT (the kernel spreads connections over
 * the workers' own sockets) instead of through node:cluster.
 */
export const REUSEPORT_ENV = "PORTCULLIS_WORKER_REUSEPORT";
