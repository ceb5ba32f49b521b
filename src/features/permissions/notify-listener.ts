/** A PostgreSQL LISTEN connection on one channel that reconnects on its own. */
import type pg from "pg";
import { pgModule } from "./pg-module.js";
import type { Clock, TimerHandle } from "../../core/clock.js";

/**
 * A dedicated PostgreSQL connection that LISTENs on one channel and keeps
 * itself connected: when the connection drops (or a heartbeat query fails or
 * hangs) it reconnects after a backoff that doubles from `initialBackoffMs`
 * up to `maxBackoffMs`, forever, until closed. It is "up" only between a
 * successful LISTEN and the next failure, which is what readiness reports.
 */
export interface NotifyListenerOptions {
  readonly clientConfig: pg.ClientConfig;
  readonly channel: string;
  readonly clock: Clock;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  /** How often the connection proves it is alive with a query. */
  readonly heartbeatMs: number;
  readonly onNotification: (payload: string | undefined) => void;
  /** Called after every successful (re)connection and LISTEN. */
  readonly onUp: () => void;
  /** Called once per loss of the connection, with the reason. */
  readonly onDown: (reason: string) => void;
}

export class NotifyListener {
  private client: pg.Client | undefined;
  private up = false;
  private closed = false;
  private backoffMs: number;
  private retry: TimerHandle | undefined;
  private heartbeat: TimerHandle | undefined;
  private attempt = 0;
  private connects = 0;
  private reportedInitialFailure = false;

  constructor(private readonly o: NotifyListenerOptions) {
    this.backoffMs = o.initialBackoffMs;
  }

  get isUp(): boolean {
    return this.up;
  }

  /** Successful connections so far (the first one included). */
  get connections(): number {
    return this.connects;
  }

  /** Makes the first attempt; resolves when it has succeeded or failed (never rejects). */
  start(): Promise<void> {
    return this.connect();
  }

  /** Drops the current connection (if any) and reconnects after the backoff: used when a query elsewhere shows the server is gone. */
  reportFailure(reason: string): void {
    if (this.up) this.lost(this.client, reason);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.retry?.cancel();
    this.heartbeat?.cancel();
    const c = this.client;
    this.client = undefined;
    this.up = false;
    if (c) await c.end().catch(() => {});
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const attempt = ++this.attempt;
    const client = new (pgModule().Client)({ ...this.o.clientConfig, keepAlive: true });
    this.client = client;
    client.on("error", (e) => this.lost(client, e.message));
    client.on("end", () => this.lost(client, "connection ended"));
    client.on("notification", (m) => {
      if (m.channel === this.o.channel) this.o.onNotification(m.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${pgModule().escapeIdentifier(this.o.channel)}`);
    } catch (e) {
      if (attempt === this.attempt && !this.closed) this.lost(client, (e as Error).message);
      return;
    }
    if (this.closed || client !== this.client) {
      await client.end().catch(() => {});
      return;
    }
    this.up = true;
    this.connects++;
    this.backoffMs = this.o.initialBackoffMs;
    this.scheduleHeartbeat(client);
    this.o.onUp();
  }

  private scheduleHeartbeat(client: pg.Client): void {
    this.heartbeat = this.o.clock.setTimer(() => {
      if (client !== this.client || !this.up) return;
      // A hung connection (no RST, no answer) counts as lost after one more heartbeat period.
      const timeout = this.o.clock.setTimer(() => this.lost(client, "heartbeat timed out"), this.o.heartbeatMs);
      client.query("SELECT 1").then(
        () => {
          timeout.cancel();
          this.scheduleHeartbeat(client);
        },
        (e: Error) => {
          timeout.cancel();
          this.lost(client, e.message);
        },
      );
    }, this.o.heartbeatMs);
  }

  private lost(client: pg.Client | undefined, reason: string): void {
    if (client === undefined || client !== this.client || this.closed) return;
    const wasUp = this.up;
    this.up = false;
    this.client = undefined;
    this.heartbeat?.cancel();
    client.removeAllListeners("notification");
    // Keep an error listener: a late socket error on a dropped client must not crash the process.
    client.on("error", () => {});
    client.end().catch(() => {});
    // Report each loss once, and the very first failure (a gateway started while PostgreSQL is down).
    if (wasUp || (this.connects === 0 && !this.reportedInitialFailure)) {
      this.reportedInitialFailure = true;
      this.o.onDown(reason);
    }
    const wait = this.backoffMs;
    this.backoffMs = Math.min(this.o.maxBackoffMs, this.backoffMs * 2);
    this.retry = this.o.clock.setTimer(() => void this.connect(), wait);
  }
}
