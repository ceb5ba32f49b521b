/**
 * A guard for an application's own server: the gateway's ConnectionGuard
 * (caps, rates, the penalty box, on any store) attached to a `net.Server`,
 * `tls.Server` (or anything that emits `'connection'` with a socket).
 *
 * `protect(server)` decides on the raw TCP socket before any other
 * `'connection'` listener sees it, so a refused client costs no TLS
 * handshake and never reaches the application; the admitted connection's
 * slots are released when its socket closes. A ban (from failed
 * authentications reported through the connection's auth-attempt API, or
 * `ban()`, or any process sharing the store) cuts every live connection of
 * the address.
 */
import type { Server as NetServer, Socket } from "node:net";
import { Server as TlsServer } from "node:tls";
import { type Clock, systemClock } from "../core/clock.js";
import { PenaltyBox } from "../limiter/penalty-box.js";
import { MemoryStore } from "../stores/memory-store.js";
import type { BanEvent, Store } from "../stores/store.js";
import { type Admission, ConnectionGuard, type GuardHit } from "../gateway/guard/connection-guard.js";
import { thenMaybe } from "../core/maybe-promise.js";
import type { ServerEventLog } from "./event-log.js";
import { GuardedConnection } from "./guarded-connection.js";
import { type ServerGuardOptions, guardConfigOf, lockoutOf } from "./options.js";

export interface ProtectOptions {
  /** Written as `transport` in `connection opened` (default: "tls" for a tls.Server, else "tcp"). */
  transport?: string;
}

/** A refused connection, for the application's own metrics. */
export interface Refusal {
  remoteAddress: string;
  /** The rule: deny_list, ban, max_connections, max_connections_per_ip, connection_rate. */
  limiter: string;
  reason: string;
}

type Emit = (event: string | symbol, ...args: unknown[]) => boolean;

export class ServerGuard {
  readonly guard: ConnectionGuard;
  readonly clock: Clock;
  readonly log: ServerEventLog | undefined;
  /** Per-subject lockout, when on. */
  readonly lockout: PenaltyBox<boolean> | undefined;
  private readonly byPeer = new Map<string, GuardedConnection>();
  private readonly detachers = new Set<() => void>();
  private readonly refusedListeners = new Set<(r: Refusal) => void>();

  constructor(o: ServerGuardOptions = {}) {
    const cfg = guardConfigOf(o);
    const lock = lockoutOf(o);
    this.clock = o.clock ?? systemClock;
    this.log = o.log;
    const store = o.store ?? new MemoryStore();
    this.guard = new ConnectionGuard(cfg, {
      clock: this.clock,
      store,
      onBanEvent: (e) => this.onSharedBan(e),
    });
    this.lockout =
      lock === undefined
        ? undefined
        : new PenaltyBox<boolean>({
            name: "server_guard.lockout",
            store,
            ...(store.sync ? { clock: this.clock } : {}),
            banFailures: lock.failures,
            banWindowMs: lock.windowMs,
            banDurationMs: lock.durationMs,
            banMaxMs: lock.durationMs,
            banMultiplier: 1,
            // A subject does not back off: it is locked or it is not (the address backs off).
            throttleAfter: 2 ** 31 - 1,
            retentionMs: lock.windowMs + lock.durationMs,
          });
  }

  get store(): Store<boolean> {
    return this.guard.store;
  }

  /** Failed authentications one connection may make before it is cut. */
  get maxAuthAttempts(): number {
    return this.guard.config.max_auth_attempts;
  }

  /** On a shared store: loads the live bans and follows the ones other processes place (resolves at once on memory). */
  async start(timeoutMs?: number): Promise<boolean> {
    const ok = await this.guard.start(timeoutMs);
    if (this.lockout !== undefined) await this.lockout.start(timeoutMs);
    return ok;
  }

  /**
   * Guards every connection `server` accepts, ahead of its own listeners
   * (for a tls.Server, ahead of the TLS handshake). Returns a function that
   * takes the guard off again.
   */
  protect(server: NetServer, o: ProtectOptions = {}): () => void {
    const transport = o.transport ?? (server instanceof TlsServer ? "tls" : "tcp");
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the wrapper keeps the server as `this`
    const self = this;
    const original = server.emit as Emit;
    const guardedEmit: Emit = function (this: NetServer, event, ...args) {
      if (event !== "connection") return original.call(this, event, ...args);
      const socket = args[0] as Socket;
      const admitted = self.admit(socket, transport);
      if (admitted instanceof Promise) {
        // An asynchronous store answers later: the socket waits unread (TLS picks up what it buffered).
        socket.pause();
        admitted.then(
          (c) => {
            if (c !== undefined) original.call(this, event, ...args);
          },
          () => socket.destroy(),
        );
        return true;
      }
      return admitted === undefined ? false : original.call(this, event, ...args);
    };
    (server as { emit: Emit }).emit = guardedEmit;
    const detach = (): void => {
      if ((server as { emit: Emit }).emit === guardedEmit) (server as { emit: Emit }).emit = original;
      this.detachers.delete(detach);
    };
    this.detachers.add(detach);
    return detach;
  }

  /**
   * Admits or refuses one accepted socket (from a `'connection'` handler of
   * your own): the connection, or undefined after destroying a refused
   * socket. A promise on an asynchronous store.
   */
  admit(socket: Socket, transport = "tcp"): GuardedConnection | undefined | Promise<GuardedConnection | undefined> {
    const address = socket.remoteAddress;
    if (address === undefined) {
      // Already gone (reset before we looked): nothing to count.
      socket.destroy();
      return undefined;
    }
    return thenMaybe(this.guard.admit(address), (r) => this.settle(socket, address, transport, r));
  }

  private settle(socket: Socket, address: string, transport: string, r: Admission | GuardHit): GuardedConnection | undefined {
    if (!("key" in r)) {
      this.log?.connectionRefused({ remote_addr: address, limiter: r.limiter, reason: r.reason });
      for (const l of this.refusedListeners) l({ remoteAddress: address, limiter: r.limiter, reason: r.reason });
      socket.destroy();
      return undefined;
    }
    if (socket.destroyed) {
      r.release();
      return undefined;
    }
    return new GuardedConnection(this, socket, r, transport);
  }

  /** Called for every refused connection. */
  onRefused(listener: (r: Refusal) => void): () => void {
    this.refusedListeners.add(listener);
    return () => this.refusedListeners.delete(listener);
  }

  /** The guarded connection of an admitted socket, or of a peer's address and port (as ssh2's `info.ip`, `info.port` give them). */
  connectionOf(socket: Socket): GuardedConnection | undefined;
  connectionOf(address: string, port: number): GuardedConnection | undefined;
  connectionOf(a: Socket | string, port?: number): GuardedConnection | undefined {
    if (typeof a === "string") return this.byPeer.get(peerKey(a, port));
    return this.byPeer.get(peerKey(a.remoteAddress, a.remotePort));
  }

  /** Live guarded connections. */
  get size(): number {
    return this.guard.registry.size;
  }

  /** Bans an address now (for `durationMs`, or the escalating length) and cuts its live connections. */
  ban(address: string, durationMs?: number): void | Promise<void> {
    const key = this.guard.keyOf(address);
    return thenMaybe(this.guard.penaltyBox.ban(key, durationMs), (until) => this.announceBan(key, address, until, 0));
  }

  /** Lifts the ban and the failure record of an address. */
  unban(address: string): boolean | Promise<boolean> {
    return this.guard.penaltyBox.forget(this.guard.keyOf(address));
  }

  /** Whether an address is banned now, as far as this process knows without I/O. */
  isBanned(address: string): boolean {
    return this.guard.penaltyBox.isBanned(this.guard.keyOf(address));
  }

  /** Takes the guard off every server and stops its timers; cuts nothing (close the servers for that). */
  close(): void {
    for (const d of [...this.detachers]) d();
    this.guard.close();
    if (this.lockout !== undefined && !this.lockout.sync) void this.lockout.close();
  }

  /** @internal */
  track(c: GuardedConnection): void {
    this.guard.registry.add(c.key, c);
    this.byPeer.set(peerKey(c.remoteAddress, c.remotePort), c);
  }

  /** @internal */
  untrack(c: GuardedConnection): void {
    this.guard.registry.delete(c.key, c);
    const k = peerKey(c.remoteAddress, c.remotePort);
    if (this.byPeer.get(k) === c) this.byPeer.delete(k);
  }

  /** @internal A ban started here: logged, and the address's live connections cut. */
  announceBan(key: string, address: string, untilBox: number, failures: number): void {
    const until = this.clock.wallNow() + (untilBox - this.guard.penaltyBox.now());
    this.log?.ban({ remote_addr: address, until, failures });
    if (!this.guard.penaltyBox.shadow) this.guard.registry.closeAll(key, "banned");
  }

  /** A ban placed by any process on a shared store (this one too): cut what the address has open here. */
  private onSharedBan(e: BanEvent): void {
    if (e.kind !== "ban" || this.guard.penaltyBox.shadow) return;
    this.guard.registry.closeAll(e.key, "banned");
  }
}

function peerKey(address: string | undefined, port: number | undefined): string {
  return `${address ?? ""}|${port ?? 0}`;
}

/** A guard for your own servers (see ServerGuardOptions). */
export function createServerGuard(o: ServerGuardOptions = {}): ServerGuard {
  return new ServerGuard(o);
}

/** Guards one server with a guard of its own; returns the guard (its `close()` takes it off). */
export function protect(server: NetServer, o: ServerGuardOptions & ProtectOptions = {}): ServerGuard {
  const g = new ServerGuard(o);
  g.protect(server, o.transport === undefined ? {} : { transport: o.transport });
  return g;
}
