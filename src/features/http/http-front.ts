/**
 * The `http` listener's protocol: connections the guard admitted are handed
 * to the HTTP layer's reverse proxy (src/features/http/proxy/server.ts), which applies
 * the `[http]` route rules and forwards to the listener's upstream. The
 * proxy's http.Server never binds a port of its own: the Listener accepts,
 * the guard decides, and only admitted sockets reach the HTTP parser.
 *
 * On reload, new rules replace the limiter for the next requests on every
 * connection (kept-alive ones too); new proxy settings (upstream, sizes,
 * timeouts) take a new server for new connections while the old one serves
 * its open connections until they end.
 */
import type { TimerHandle } from "../../core/clock.js";
import { HttpLimiter } from "./http-limiter.js";
import { type HttpProxyServer, createHttpProxyServer } from "./proxy/server.js";
import { limiterOptionsOf } from "./config-schema.js";
import type { HttpConnection, HttpContext, HttpListenerConfig } from "./gateway-view.js";
import { proxyOptionsOf } from "./options.js";
import { httpRefusalLogger } from "./refusal-log.js";

interface Served {
  cfg: HttpListenerConfig;
  readonly server: HttpProxyServer;
  sockets: number;
  retired: boolean;
}

/** How often a draining front closes keep-alive connections whose response has just finished. */
const DRAIN_SWEEP_MS = 100;

export class HttpFront {
  private limiter: HttpLimiter | undefined;
  /** The configuration the limiter was built from, and its `[http]` section as text (to tell a real change). */
  private rulesOf: { config: HttpContext["config"]; text: string } | undefined;
  private current: Served | undefined;
  /** Servers with open connections (the current one and retired ones still draining). */
  private readonly servers = new Set<Served>();
  /** A graceful stop is under way: keep-alive connections are closed once idle. */
  private draining = false;
  private sweeper: TimerHandle | undefined;
  private readonly onReload = (e: { ok: boolean }): void => {
    if (e.ok) this.refreshRules();
  };

  constructor(
    private readonly name: string,
    private readonly ctx: HttpContext,
  ) {
    // The gateway emits "reload" once the new configuration is in place: new routes apply at once, not at the next connection.
    ctx.events.on("reload", this.onReload);
  }

  /** Runs HTTP on an admitted connection with the listener's settings `cfg`. */
  accept(conn: HttpConnection, cfg: HttpListenerConfig): void {
    const limiter = this.refreshRules();
    const served = this.serverFor(cfg, limiter);
    served.sockets++;
    conn.stream.once("close", () => {
      served.sockets--;
      if (served.retired && served.sockets === 0) this.drop(served);
    });
    served.server.emit("connection", conn.stream);
  }

  /**
   * Graceful stop: closes keep-alive connections as soon as they are idle
   * (now, and after each response in flight), so open requests finish and
   * nothing waits on a client that only keeps its socket.
   */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    for (const s of this.servers) {
      s.server.closeIdleConnections();
      // Responses from now on say "Connection: close"; the ones in flight are swept once they are done.
      s.server.prependListener("request", (_req: unknown, res: import("node:http").ServerResponse) => {
        res.shouldKeepAlive = false;
      });
    }
    const sweep = (): void => {
      for (const s of this.servers) s.server.closeIdleConnections();
      if (this.draining) this.sweeper = this.ctx.clock.setTimer(sweep, DRAIN_SWEEP_MS);
    };
    this.sweeper = this.ctx.clock.setTimer(sweep, DRAIN_SWEEP_MS);
  }

  /** Closes every server and the limiter (the Listener closes the connections). */
  close(): void {
    this.draining = false;
    this.sweeper?.cancel();
    this.ctx.events.off("reload", this.onReload);
    for (const s of [...this.servers]) this.drop(s);
    this.current = undefined;
    this.limiter?.dispose();
    void this.limiter?.lockout.close();
    this.limiter = undefined;
  }

  /** The limiter for the current `[http]` section, rebuilt only when the section changed. */
  private refreshRules(): HttpLimiter {
    const config = this.ctx.config;
    if (this.limiter !== undefined && this.rulesOf?.config === config) return this.limiter;
    const text = JSON.stringify(config.http);
    if (this.limiter !== undefined && this.rulesOf?.text === text) {
      this.rulesOf = { config, text };
      return this.limiter;
    }
    const next = this.buildLimiter(config);
    const old = this.limiter;
    this.limiter = next;
    this.rulesOf = { config, text };
    for (const s of this.servers) s.server.setLimiter(next);
    if (old !== undefined) {
      old.dispose();
      // The old lockout's subscription and its place among the store's recovery listeners go with it.
      void old.lockout.close();
    }
    return next;
  }

  private buildLimiter(config: HttpContext["config"]): HttpLimiter {
    const listener = this.name;
    // A shared store: the listener's route limits, queue places and lockout count with the fleet's,
    // under the listener's name. On memory the limiter keeps its own store, as each listener always has.
    const shared = this.ctx.store.sync ? {} : { store: this.ctx.store, scope: listener };
    const limiter = new HttpLimiter({
      ...limiterOptionsOf(config.http),
      ...shared,
      clock: this.ctx.clock,
      // Every 429 is logged (event=limited) and counted there, once.
      logger: httpRefusalLogger(listener, this.ctx),
    });
    // On a shared store the lockout hears the fleet's locks and unlocks (pub/sub) into its local cache.
    if (!this.ctx.store.sync) void limiter.lockout.start();
    return limiter;
  }

  private serverFor(cfg: HttpListenerConfig, limiter: HttpLimiter): Served {
    const cur = this.current;
    if (cur !== undefined && cur.cfg === cfg) return cur;
    if (cur !== undefined && sameProxySettings(cur.cfg, cfg)) {
      // A reload that left the proxy settings alone: remember the new object so the next accept skips the comparison.
      cur.cfg = cfg;
      return cur;
    }
    const server = createHttpProxyServer({ ...proxyOptionsOf(cfg), rules: limiter, logger: httpRefusalLogger(this.name, this.ctx) });
    // Node enforces headersTimeout / requestTimeout from a timer it starts on "listening"; this server never
    // listens itself (sockets come from the guarded Listener), so it is told it does, to bound slow clients.
    server.emit("listening");
    const served: Served = { cfg, server, sockets: 0, retired: false };
    this.servers.add(served);
    this.current = served;
    if (cur !== undefined) {
      cur.retired = true;
      cur.server.closeIdleConnections();
      if (cur.sockets === 0) this.drop(cur);
    }
    return served;
  }

  private drop(s: Served): void {
    if (!this.servers.delete(s)) return;
    // Closes the upstream pool (after requests in flight) and the slow-client timer; the limiter is ours, not the server's.
    s.server.close();
    s.server.closeAllConnections();
  }
}

function sameProxySettings(a: HttpListenerConfig, b: HttpListenerConfig): boolean {
  return JSON.stringify(proxyOptionsOf(a)) === JSON.stringify(proxyOptionsOf(b));
}
