/**
 * What a Gateway reports to whoever watches it (admin API, metrics, tests).
 * Destinations are never part of these events: privacy holds for every
 * consumer, not only for the log.
 */
export interface GatewayEvents {
  /** A connection was admitted by the guard. */
  connection: [{ listener: string; remote_addr: string; transport: string }];
  /** An admitted connection ended. */
  close: [{ listener: string; remote_addr: string; duration_ms: number }];
  /** The guard refused a connection (or would have: shadow = true). */
  refused: [{ listener: string; remote_addr: string; limiter: string; reason: string; shadow: boolean; long_retry_after?: boolean }];
  /** An authentication attempt was decided; `long_retry_after` when a refused client must wait above log.long_retry_after. */
  auth: [{ listener: string; remote_addr: string; user: string | undefined; result: "accept" | "reject"; reason: string | undefined; long_retry_after?: boolean }];
  /** The destination policy decided a tunnel; `code` classes a refusal (policy, dns, private_address, ...). */
  decision: [{ listener: string; remote_addr: string; identity: string; allowed: boolean; reason: string; code?: string }];
  /** A key (address or IPv6 prefix) was banned until `until` (wall-clock ms). */
  ban: [{ key: string; until: number; failures: number; closed: number; shadow: boolean; reason?: string }];
  unban: [{ key: string; reason: string }];
  /** Defensive mode started (the failed-login table is full of live entries) or ended. */
  saturation: [{ active: boolean; reason: string }];
  /**
   * Bytes an admitted connection relayed, as totals sent once per direction
   * when it closes ("in": client to upstream, "out": upstream to client).
   * Never per destination and never per chunk.
   */
  bytes: [{ listener: string; direction: "in" | "out"; bytes: number }];
  /** A new configuration was applied or refused. */
  reload: [{ ok: boolean; problems: string[] }];
  /** Time the bandwidth shaper held data back since its last report ("in": client to upstream, "out": to the client). */
  throttle: [{ direction: "in" | "out"; seconds: number; remote_addr?: string }];
}
