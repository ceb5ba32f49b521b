/**
 * One configured listener: a TCP server whose every accepted socket meets
 * the guard before anything else happens (no TLS, no parsing), then runs
 * the listener kind's protocol. Settings can be swapped in place on reload.
 */
import net from "node:net";
import type tls from "node:tls";
import { type TimerHandle, systemClock } from "../core/clock.js";
import type { ListenerConfig } from "./config/schema.js";
import { Connection } from "./connection.js";
import type { GatewayContext } from "./context.js";
import { ConnectSession } from "./listeners/connect-handler.js";
import { relayToUpstream } from "./listeners/tcp-handler.js";
import { adopt } from "./read-pump.js";
// The http reverse proxy (undici and the route limits) is loaded by http listeners only, when they bind.
import type { HttpFront } from "../features/http/http-front.js";
import { secureContextOf, serverHandshake } from "./tls-setup.js";
// Signed PostgreSQL permissions of a connect listener (src/features/permissions/).
import { PermissionSlot } from "../features/permissions/permission-slot.js";
// Probe resistance on TLS tcp listeners: ClientHello peek, mask host (src/features/probe-resistance/).
import { acceptMaskedTls, masksTls } from "../features/probe-resistance/tls-masking.js";
import { MaskedSlots } from "../features/probe-resistance/masked-slots.js";
import type { Admission, GuardHit } from "./guard/connection-guard.js";
import { admissionRetryAfter } from "./log/retry-after.js";

/** How often open connections report the bytes they relayed (portcullis_relayed_bytes_total moves during a tunnel). */
export const BYTES_REPORT_MS = 2000;

export interface BoundListener {
  name: string;
  kind: string;
  host: string;
  port: number;
  tls: boolean;
}

export class Listener {
  private readonly server: net.Server;
  private readonly open = new Set<Connection>();
  /** The next report of open connections' relayed bytes, while any is open. */
  private bytesReport: TimerHandle | undefined;
  /** Callers of idle() waiting for the last connection to end. */
  private waiters: (() => void)[] = [];
  /** Set once the server stops accepting; resolves when it has closed. */
  private serverClosed: Promise<void> | undefined;
  private secure: tls.SecureContext | undefined;
  private cfg: ListenerConfig;
  /** http kind: the reverse proxy admitted sockets are handed to (made when the listener binds). */
  private http: HttpFront | undefined;
  /** connect kind with `policy = { source = "postgres" }`: the signed permission policy, opened here. */
  private readonly permissions: PermissionSlot;
  /** probe_resistance: masked connections of addresses the guard refuses, per address key. */
  private readonly maskedSlots = new MaskedSlots();

  constructor(
    cfg: ListenerConfig,
    private readonly ctx: GatewayContext,
  ) {
    this.cfg = cfg;
    this.secure = cfg.tls ? secureContextOf(cfg.tls) : undefined;
    this.permissions = new PermissionSlot(ctx);
    this.permissions.configure(cfg);
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (s) => this.acceptSafely(s));
    // Accept errors (EMFILE and the like) must not end the process.
    this.server.on("error", (err) => ctx.logger.error("listener error", { listener: cfg.name, code: (err as NodeJS.ErrnoException).code }));
  }

  get config(): ListenerConfig {
    return this.cfg;
  }

  get connections(): number {
    return this.open.size;
  }

  /** connect kind with a postgres policy: that policy (readiness, open tunnels). */
  get signedDestinations(): import("../features/permissions/signed-destinations.js").SignedDestinations | undefined {
    return this.permissions.destinations;
  }

  /** Whether `next` can replace the current settings without re-binding. */
  canUpdateTo(next: ListenerConfig): boolean {
    return next.kind === this.cfg.kind && next.bind.host === this.cfg.bind.host && next.bind.port === this.cfg.bind.port;
  }

  /** New settings for the next connections (TLS files are re-read, so certificate rotation works by reload). */
  update(next: ListenerConfig): void {
    this.secure = next.tls ? secureContextOf(next.tls) : undefined;
    this.permissions.configure(next);
    this.cfg = next;
  }

  async listen(): Promise<BoundListener> {
    if (this.cfg.kind === "http" && this.http === undefined) {
      const { HttpFront } = await import("../features/http/http-front.js");
      this.http = new HttpFront(this.cfg.name, this.ctx);
    }
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once("error", onError);
      // A worker told to (workers = N with reuse_port = true) binds its own SO_REUSEPORT socket instead of the cluster's shared one.
      const own = process.env.PORTCULLIS_WORKER_REUSEPORT === "1" ? { exclusive: true, reusePort: true } : {};
      this.server.listen({ host: this.cfg.bind.host, port: this.cfg.bind.port, backlog: 1024, ...own } as net.ListenOptions, () => {
        this.server.removeListener("error", onError);
        resolve(this.bound());
      });
    });
  }

  bound(): BoundListener {
    const a = this.server.address() as net.AddressInfo;
    return { name: this.cfg.name, kind: this.cfg.kind, host: a.address, port: a.port, tls: this.cfg.tls !== undefined };
  }

  /**
   * Stops accepting new connections; the open ones go on (a graceful stop
   * drains them). HTTP keep-alive connections are closed once idle, so a
   * drain does not wait on a client that merely keeps its socket open.
   */
  stopAccepting(): void {
    if (this.serverClosed !== undefined) return;
    this.serverClosed = new Promise((resolve) => this.server.close(() => resolve()));
    this.http?.drain();
  }

  /** Resolves when every open connection of this listener has ended. */
  idle(): Promise<void> {
    if (this.open.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push(resolve);
    });
  }

  /** Stops accepting and cuts this listener's remaining connections. */
  async close(): Promise<void> {
    this.stopAccepting();
    this.http?.close();
    for (const c of [...this.open]) c.close("stopping");
    this.bytesReport?.cancel();
    this.bytesReport = undefined;
    await this.serverClosed;
    await this.permissions.close();
  }

  /** Made once, handed to every connection. */
  private readonly onEnded = (c: Connection): void => this.ended(c);

  /** Reports every open connection's relayed bytes each BYTES_REPORT_MS, for as long as one is open. */
  private readonly reportBytes = (): void => {
    this.bytesReport = undefined;
    for (const c of this.open) c.reportBytes();
    if (this.open.size > 0) this.bytesReport = this.ctx.clock.setTimer(this.reportBytes, BYTES_REPORT_MS);
  };

  private ended(c: Connection): void {
    this.open.delete(c);
    if (this.open.size > 0 || this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** A fault in handling one connection costs that connection, never the process. */
  private acceptSafely(raw: net.Socket): void {
    try {
      this.accept(raw);
    } catch (err) {
      raw.destroy();
      this.ctx.logger.error("connection setup failed", { listener: this.cfg.name, error: err instanceof Error ? err.message : String(err) });
    }
  }

  private accept(raw: net.Socket): void {
    const remote = raw.remoteAddress;
    if (remote === undefined) {
      raw.destroy();
      return;
    }
    const answer = this.ctx.guard.admit(remote);
    if (answer instanceof Promise) {
      // A shared store: the socket stays paused (pauseOnConnect) until the guard has answered.
      raw.on("error", noop);
      answer.then(
        (a) => {
          raw.off("error", noop);
          if (raw.destroyed) {
            // The client left while its admission was on its way.
            if (!("limiter" in a)) a.release();
            return;
          }
          this.admitted(raw, remote, a);
        },
        (err: unknown) => {
          raw.destroy();
          this.ctx.logger.error("connection setup failed", { listener: this.cfg.name, error: err instanceof Error ? err.message : String(err) });
        },
      );
      return;
    }
    this.admitted(raw, remote, answer);
  }

  /** Goes on with a connection the guard has answered for. */
  private admitted(accepted: net.Socket, remote: string, answer: Admission | GuardHit): void {
    let raw = accepted;
    let admitted: Admission | GuardHit = answer;
    // A masking listener keeps showing the mask site to a banned or throttled prober; only its served paths are gone.
    const refusedBy = "limiter" in admitted ? this.maskInsteadOfRefusing(remote, admitted) : undefined;
    if (refusedBy !== undefined) admitted = refusedBy.admission;
    if ("limiter" in admitted) {
      // Silent close: no banner, no reason on the wire. Counted by the guard, told to the log and watchers.
      raw.destroy();
      const wait = admissionRetryAfter(this.ctx, admitted);
      this.ctx.logger.limited({ remote_addr: remote, limiter: admitted.limiter, reason: admitted.reason, listener: this.cfg.name, ...wait });
      this.ctx.events.emit("refused", { listener: this.cfg.name, remote_addr: remote, limiter: admitted.limiter, reason: admitted.reason, shadow: false, long_retry_after: wait.long_retry_after });
      return;
    }
    const cfg = this.cfg;
    // A plain tcp relay reads the client through a pump (no allocation per read); nothing parses its bytes first.
    if (cfg.kind === "tcp" && !cfg.tls) raw = adopt(raw, this.ctx.readBuffers) ?? raw;
    raw.on("error", () => raw.destroy());
    const conn = new Connection(raw, remote, admitted, cfg.name, this.ctx, this.onEnded);
    this.open.add(conn);
    this.bytesReport ??= this.ctx.clock.setTimer(this.reportBytes, BYTES_REPORT_MS);
    const transport = cfg.tls ? "tls" : "tcp";
    this.ctx.logger.connOpen({ remote_addr: remote, transport, listener: cfg.name });
    this.ctx.events.emit("connection", { listener: cfg.name, remote_addr: remote, transport });
    if (this.secure && masksTls(cfg)) {
      acceptMaskedTls(
        conn,
        cfg,
        this.secure,
        this.ctx,
        (tlsSocket) => {
          conn.stream = tlsSocket;
          this.run(conn, cfg, undefined);
        },
        refusedBy?.reason,
      );
      return;
    }
    if (refusedBy !== undefined) {
      // A connect listener: straight to the mask host with whatever the client sends.
      new ConnectSession(conn, cfg, this.ctx, undefined, this.permissions.destinations).start(refusedBy.reason);
      raw.resume();
      return;
    }
    if (cfg.tls && this.secure) {
      raw.resume();
      void serverHandshake(raw, cfg.tls, this.secure, (fn, ms) => systemClock.setTimer(fn, ms)).then((hs) => {
        if (hs === undefined) return conn.close("tls_handshake");
        conn.stream = hs.socket;
        this.run(conn, cfg, hs.peer);
      }).catch((err: unknown) => {
        this.ctx.logger.error("connection setup failed", { listener: cfg.name, error: err instanceof Error ? err.message : String(err) });
        conn.close("internal");
      });
      return;
    }
    this.run(conn, cfg, undefined);
    raw.resume();
  }

  /**
   * With probe_resistance, an address refused for a ban or a connection rate
   * is masked instead (within max_masked_per_address connections open at
   * once); deny lists and connection caps still refuse.
   */
  private maskInsteadOfRefusing(remote: string, hit: GuardHit): { admission: Admission; reason: string } | undefined {
    const p = this.cfg.probe_resistance;
    if (p === undefined || hit.shadow) return undefined;
    if (hit.limiter !== "ban" && hit.limiter !== "connection_rate" && hit.limiter !== "prefix_connection_rate") return undefined;
    if (this.cfg.kind === "tcp" && !masksTls(this.cfg)) return undefined;
    const key = this.ctx.guard.keyOf(remote);
    const release = this.maskedSlots.acquire(key, p.max_masked_per_address);
    if (release === undefined) return undefined;
    this.ctx.logger.limited({ remote_addr: remote, limiter: hit.limiter, reason: `${hit.reason}_masked`, listener: this.cfg.name });
    this.ctx.events.emit("refused", { listener: this.cfg.name, remote_addr: remote, limiter: hit.limiter, reason: `${hit.reason}_masked`, shadow: false });
    return { admission: { key, exempt: false, release }, reason: hit.limiter === "ban" ? "banned" : "throttled" };
  }

  private run(conn: Connection, cfg: ListenerConfig, peer: import("node:crypto").X509Certificate | undefined): void {
    if (cfg.kind === "connect") new ConnectSession(conn, cfg, this.ctx, peer, this.permissions.destinations).start();
    else if (cfg.kind !== "http") relayToUpstream(conn, cfg);
    // The front is made before the server listens, so an http connection always finds it.
    else if (this.http !== undefined) this.http.accept(conn, cfg);
    else conn.close("internal");
  }
}

function noop(): void {}
