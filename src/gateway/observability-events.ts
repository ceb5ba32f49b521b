/**
 * Events that feed metrics beyond the gateway's own GatewayEvents: byte
 * totals of a relayed connection, shaping delays and store health. A
 * component that has these facts emits them on the gateway's `events`
 * emitter; GatewayMetrics listens for them. Totals only: no event names a
 * destination, and bytes are reported per connection every few seconds and at
 * its end, never per chunk.
 */
export interface ObservabilityEvents {
  /** Bytes a connection relayed in one direction since its last report ("in": from the client, "out": to the client): every few seconds while open, and at its close. */
  bytes: [{ listener: string; direction: "in" | "out"; bytes: number }];
  /** Time a shaper held data back. */
  throttle: [{ direction: "in" | "out"; seconds: number; remote_addr?: string }];
  /** One store round trip (e.g. a Redis script call). */
  store_latency: [{ seconds: number }];
  /** The store entered (mode) or left (mode = "none") a fallback. */
  store_fallback: [{ mode: "insurance" | "open" | "closed" | "none" }];
  /**
   * An http listener refused a request: `route` and `limiter` are names from the configuration ("lockout" for a locked subject);
   * `remote_addr` is the client's address (for the offender table, never a label).
   */
  http_rejection: [{ listener: string; route: string; limiter: string; remote_addr?: string | undefined; long_retry_after?: boolean }];
  /** A password check started after waiting `seconds` for a slot. */
  verification_wait: [{ seconds: number; priority: "trusted" | "unknown" }];
  /** A password check never ran: its queue was full, its connection closed, or it waited too long. */
  verification_drop: [{ reason: "queue_full" | "closed" | "timeout" }];
}
