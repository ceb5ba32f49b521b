/**
 * The gateway's `http` listener: a reverse proxy to one upstream (undici)
 * that applies the route rules of the HTTP layer before forwarding. Client
 * addresses follow the trusted-proxy rules, and so do the forwarding
 * headers sent upstream. Every stage is bounded: header size and count,
 * body size, time to receive headers and the whole request, time to connect
 * upstream and to get its headers and body. Failures answer with a status
 * and a short problem document, never with an error's details.
 */
import http from "node:http";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Pool, errors as undiciErrors } from "undici";
import { InvalidArgumentError } from "../../../core/errors.js";
import { integerAtLeast, positive } from "../../../core/validate.js";
import { normalizeIp } from "../../../net/ip-key.js";
import { BodyTooLargeError, RAW_BODY } from "../form-body.js";
import { HttpLimiter } from "../http-limiter.js";
import type { HttpLimiterOptions, HttpLogger } from "../types.js";
import { runLimiter } from "../adapters/node.js";
import { clientResponseHeaders, upstreamRequestHeaders } from "./forward-headers.js";

export interface HttpProxyOptions {
  /** Origin (and optional base path) of the upstream: "http://127.0.0.1:8080" or "http://10.0.0.5:9000/api". */
  upstream: string;
  /** The route rules (or a limiter built from them). */
  rules: HttpLimiterOptions | HttpLimiter;
  /** Largest request head in bytes (default 16 KiB); larger heads get 431. */
  maxHeaderSize?: number;
  /** Most request headers (default 100). */
  maxHeadersCount?: number;
  /** Largest request body in bytes (default 1 MiB); larger bodies get 413. */
  maxBodySize?: number;
  /** Time for a client to send its request headers (default 10 s). */
  headersTimeoutMs?: number;
  /** Time for a client to send its whole request (default 30 s). */
  requestTimeoutMs?: number;
  /** Idle time of a kept-alive client connection (default 5 s). */
  keepAliveTimeoutMs?: number;
  /** Time to connect to the upstream (default 5 s). */
  upstreamConnectTimeoutMs?: number;
  /** Time for the upstream to send its response headers (default 30 s). */
  upstreamHeadersTimeoutMs?: number;
  /** Longest gap between upstream body chunks (default 30 s). */
  upstreamBodyTimeoutMs?: number;
  /** Connections to the upstream (default 64). */
  upstreamConnections?: number;
  logger?: HttpLogger;
}

export type HttpProxyServer = http.Server & {
  readonly limiter: HttpLimiter;
  /**
   * Applies new rules to the next requests (a configuration reload). The
   * caller owns `next`; a limiter the server made itself is disposed here.
   */
  setLimiter(next: HttpLimiter): void;
};

const PROBLEM_TITLES: Record<number, string> = {
  400: "Bad Request",
  413: "Content Too Large",
  500: "Internal Server Error",
  502: "Bad Gateway",
  504: "Gateway Timeout",
};

export function createHttpProxyServer(o: HttpProxyOptions): HttpProxyServer {
  let upstream: URL;
  try {
    upstream = new URL(o.upstream);
  } catch {
    throw new InvalidArgumentError("upstream", `not a URL: ${JSON.stringify(o.upstream)}`);
  }
  if (upstream.protocol !== "http:" && upstream.protocol !== "https:") throw new InvalidArgumentError("upstream", "must be an http:// or https:// URL");
  const basePath = upstream.pathname.replace(/\/+$/, "");
  const maxBody = integerAtLeast("maxBodySize", o.maxBodySize ?? 1_048_576, 0);
  let limiter = o.rules instanceof HttpLimiter ? o.rules : new HttpLimiter({ ...o.rules, logger: o.rules.logger ?? o.logger });
  // A limiter passed in may be shared (several servers, a reload): only the one made here is disposed here.
  let ownsLimiter = !(o.rules instanceof HttpLimiter);
  const log = o.logger;
  const pool = new Pool(upstream.origin, {
    connections: integerAtLeast("upstreamConnections", o.upstreamConnections ?? 64, 1),
    connect: { timeout: positive("upstreamConnectTimeoutMs", o.upstreamConnectTimeoutMs ?? 5_000) },
    headersTimeout: positive("upstreamHeadersTimeoutMs", o.upstreamHeadersTimeoutMs ?? 30_000),
    bodyTimeout: positive("upstreamBodyTimeoutMs", o.upstreamBodyTimeoutMs ?? 30_000),
  });

  const forward = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const target = forwardPath(req.url ?? "/");
    if (target === undefined) return answer(res, 400);
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > maxBody) return answer(res, 413);
    const peer = safePeer(req.socket.remoteAddress);
    // Also on routes without limits: a proxy in front that is not trusted is a setting worth one warning.
    limiter.clientIp({ remoteAddress: req.socket.remoteAddress, headers: req.headers });
    const headers = upstreamRequestHeaders(req.headers, peer, limiter.trustedProxies.trusts(peer), "http");
    const raw = (req as { [RAW_BODY]?: Buffer })[RAW_BODY];
    const hasBody = raw !== undefined || req.headers["transfer-encoding"] !== undefined || (Number.isFinite(declared) && declared > 0);
    const ac = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) ac.abort();
    };
    res.once("close", onClose);
    try {
      const up = await pool.request({
        origin: upstream.origin,
        method: req.method ?? "GET",
        path: basePath + target,
        headers,
        body: raw ?? (hasBody ? Readable.from(limitedBody(req, maxBody), { objectMode: false }) : null),
        signal: ac.signal,
      });
      if (res.destroyed) {
        up.body.destroy();
        return;
      }
      res.writeHead(up.statusCode, clientResponseHeaders(up.headers));
      await pipeline(up.body, res);
    } catch (e) {
      if (ac.signal.aborted) return; // the client left; nothing to answer
      const status = e instanceof BodyTooLargeError ? 413 : isTimeout(e) ? 504 : 502;
      if (status !== 413) log?.warn("upstream request failed", { upstream: upstream.origin, status, error: errorName(e), remote_ip: peer });
      answer(res, status);
    } finally {
      res.off("close", onClose);
    }
  };

  const server = http.createServer(
    {
      maxHeaderSize: integerAtLeast("maxHeaderSize", o.maxHeaderSize ?? 16_384, 1024),
      headersTimeout: positive("headersTimeoutMs", o.headersTimeoutMs ?? 10_000),
      // How often Node checks the two timeouts above (its default, 30 s, would let a slow client linger that long).
      connectionsCheckingInterval: Math.min(1_000, o.headersTimeoutMs ?? 10_000),
      requestTimeout: positive("requestTimeoutMs", o.requestTimeoutMs ?? 30_000),
      keepAliveTimeout: positive("keepAliveTimeoutMs", o.keepAliveTimeoutMs ?? 5_000),
    },
    (req, res) => {
      runLimiter(limiter, req, res, req.url ?? "/", (err) => {
        if (err !== undefined) {
          log?.warn("request failed in the limiter", { error: errorName(err) });
          answer(res, 500);
          return;
        }
        forward(req, res).catch(() => answer(res, 502));
      });
    },
  );
  server.maxHeadersCount = integerAtLeast("maxHeadersCount", o.maxHeadersCount ?? 100, 1);
  server.on("close", () => {
    if (ownsLimiter) limiter.dispose();
    void pool.close();
  });
  const setLimiter = (next: HttpLimiter): void => {
    if (ownsLimiter && next !== limiter) limiter.dispose();
    ownsLimiter = false;
    limiter = next;
  };
  return Object.defineProperties(server, { limiter: { get: () => limiter, enumerable: true }, setLimiter: { value: setLimiter } }) as HttpProxyServer;
}

/** The path to request upstream: origin-form as is; absolute-form reduced to its path and query. */
function forwardPath(url: string): string | undefined {
  if (url.startsWith("/")) return url;
  if (/^https?:\/\//i.test(url)) {
    try {
      const u = new URL(url);
      return u.pathname + u.search;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

async function* limitedBody(req: http.IncomingMessage, max: number): AsyncGenerator<Buffer> {
  let n = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > max) throw new BodyTooLargeError(`body exceeds ${max} bytes`);
    yield chunk;
  }
}

function answer(res: http.ServerResponse, status: number): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (res.destroyed) return;
  const body = JSON.stringify({ type: "about:blank", title: PROBLEM_TITLES[status] ?? "Error", status });
  res.writeHead(status, { "content-type": "application/problem+json", "content-length": Buffer.byteLength(body), ...(status === 413 || status === 400 ? { connection: "close" } : {}) });
  res.end(body);
}

function isTimeout(e: unknown): boolean {
  return e instanceof undiciErrors.HeadersTimeoutError || e instanceof undiciErrors.BodyTimeoutError || e instanceof undiciErrors.ConnectTimeoutError;
}

function errorName(e: unknown): string {
  if (e instanceof Error) return (e as { code?: string }).code ?? e.name;
  return typeof e;
}

function safePeer(addr: string | undefined): string {
  try {
    return addr === undefined ? "unknown" : normalizeIp(addr);
  } catch {
    return "unknown";
  }
}
