/**
 * The admin listener: node:http on its own address (loopback by default).
 * Every request is first counted by the admin rate limit (so guessing the
 * token is slow too), then matched to a route, then the bearer token is
 * checked where the route wants it. Errors are JSON with stable codes.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Clock } from "../core/clock.js";
import { AdminLimiter } from "./admin-limiter.js";
import { BearerAuth } from "./auth.js";
import { type AdminConfig, adminBind } from "./config.js";
import { AdminError, sendError } from "./errors.js";
import { retryAfterFields } from "../core/retry-after.js";
import { type Route, type RouteDeps, routes } from "./routes.js";
import { type Asset, DASHBOARD_CSP, loadAssets } from "./static-assets.js";

export interface AdminServerOptions extends RouteDeps {
  config: AdminConfig;
  token: string;
  clock: Clock;
}

/** The endpoint of the dashboard's files, and of requests no route matches, in the admin refusal metric and log. */
const ASSETS_ID = "GET /assets";
const UNMATCHED_ID = "unmatched";

interface Compiled {
  route: Route;
  id: string;
  parts: string[];
}

export class AdminServer {
  private readonly server: http.Server;
  private readonly auth: BearerAuth;
  private readonly limiter: AdminLimiter;
  private readonly table: Compiled[];
  private readonly assets: Map<string, Asset>;

  constructor(private readonly o: AdminServerOptions) {
    this.auth = new BearerAuth(o.token);
    this.limiter = new AdminLimiter(o.config.rate_limit, o.clock);
    this.assets = loadAssets();
    this.table = routes(o).map((route) => ({ route, id: `${route.method} ${route.template}`, parts: route.template.split("/") }));
    // Every endpoint's refusal count exists from the start (0), so the first burst shows in increase().
    for (const id of [...this.table.map((c) => c.id), ASSETS_ID, UNMATCHED_ID]) o.metrics.adminRateLimited.inc({ endpoint: id }, 0);
    this.server = http.createServer((req, res) => void this.serve(req, res));
    // Bounded waits: a slow or silent client is dropped, it cannot hold the listener.
    this.server.headersTimeout = 5000;
    this.server.requestTimeout = 10_000;
    this.server.keepAliveTimeout = 5000;
    this.server.maxHeadersCount = 64;
    this.server.on("clientError", (_err, socket) => socket.destroy());
  }

  async listen(): Promise<AddressInfo> {
    const { host, port } = adminBind(this.o.config);
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    return this.address();
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** The base URL of the listener, e.g. http://127.0.0.1:9090. */
  get url(): string {
    const a = this.address();
    return `http://${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader("x-content-type-options", "nosniff");
    try {
      let url: URL;
      try {
        url = new URL(req.url ?? "/", "http://admin.invalid");
      } catch {
        throw new AdminError("bad_request", "malformed request target");
      }
      const method = req.method ?? "GET";
      const match = this.match(method, url.pathname);
      const asset = method === "GET" || method === "HEAD" ? this.assets.get(url.pathname) : undefined;
      const id = match?.compiled.id ?? (asset ? ASSETS_ID : undefined);
      const d = this.limiter.check(url.pathname, id);
      if (!d.allowed) {
        const retryAfterS = Math.max(1, Math.ceil(d.retryAfterMs / 1000));
        this.limited(req, id ?? UNMATCHED_ID, retryAfterS);
        throw Object.assign(new AdminError("rate_limited", "too many admin requests"), { retryAfterS });
      }
      if (asset) return this.sendAsset(res, asset, url.pathname === "/");
      if (match === undefined) {
        const other = this.table.some((c) => matchParts(c.parts, url.pathname) !== undefined);
        throw other ? new AdminError("method_not_allowed", `${method} is not allowed here`) : new AdminError("not_found", "no such endpoint");
      }
      if (match.compiled.route.auth && !this.auth.check(req.headers.authorization)) {
        throw Object.assign(new AdminError("unauthorized", "a valid bearer token is required"), { challenge: true });
      }
      await match.compiled.route.handle({ req, res, url, params: match.params });
    } catch (err) {
      this.fail(res, err);
    }
  }

  /** A request the admin rate limit refused: counted, and logged as the gateway logs every refusal (event=limited). */
  private limited(req: IncomingMessage, endpoint: string, retryAfterS: number): void {
    this.o.metrics.adminRateLimited.inc({ endpoint });
    this.o.gateway.logger.limited({
      remote_addr: req.socket.remoteAddress ?? "unknown",
      listener: "admin",
      route: endpoint,
      limiter: "admin",
      key: this.limiter.strategy,
      reason: "rate_limited",
      ...retryAfterFields(retryAfterS * 1000, this.o.gateway.config.log.long_retry_after),
      method: req.method,
    });
  }

  private fail(res: ServerResponse, err: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof AdminError) {
      const headers: Record<string, string> = {};
      const extra = err as AdminError & { retryAfterS?: number; challenge?: boolean };
      if (extra.retryAfterS !== undefined) headers["retry-after"] = String(extra.retryAfterS);
      if (extra.challenge) headers["www-authenticate"] = 'Bearer realm="portcullis"';
      sendError(res, err, headers);
      return;
    }
    // A bug costs one request and a log line, never the process, and never shows a stack.
    this.o.gateway.logger.warn("admin request failed", { error: err instanceof Error ? err.message.split("\n")[0] : String(err) });
    sendError(res, new AdminError("internal", "internal error"));
  }

  private sendAsset(res: ServerResponse, asset: Asset, page: boolean): void {
    const headers: Record<string, string | number> = { "content-type": asset.type, "content-length": asset.body.length, "cache-control": "no-cache" };
    if (page) {
      headers["content-security-policy"] = DASHBOARD_CSP;
      headers["referrer-policy"] = "no-referrer";
    }
    res.writeHead(200, headers);
    res.end(asset.body);
  }

  private match(method: string, path: string): { compiled: Compiled; params: Record<string, string> } | undefined {
    for (const c of this.table) {
      if (c.route.method !== method) continue;
      const params = matchParts(c.parts, path);
      if (params) return { compiled: c, params };
    }
    return undefined;
  }
}

/** Matches "/v1/bans/{ip}" against a path; parameters are URL-decoded and may not be empty. */
function matchParts(parts: string[], path: string): Record<string, string> | undefined {
  const segs = path.split("/");
  if (segs.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    const s = segs[i]!;
    if (p.startsWith("{")) {
      if (s.length === 0) return undefined;
      try {
        params[p.slice(1, -1)] = decodeURIComponent(s);
      } catch {
        return undefined;
      }
    } else if (p !== s) return undefined;
  }
  return params;
}
