/**
 * `app.use(rateLimit({ windowMs: 60_000, limit: 30 }))`: the one-line
 * middleware for Express 4 and 5 and node:http (anything that calls
 * `(req, res, next)`), with express-rate-limit's option names. It runs on a
 * route table of one route (see one-route.ts), so the queue, lockout,
 * shadow mode, GCRA and shared stores of the route table come with it.
 *
 * The types name only node:http's request and response, so a project that
 * does not use Express needs no Express types; with Express, annotate the
 * callbacks' parameters with Express's own Request and Response.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { InvalidArgumentError } from "../../core/errors.js";
import type { HttpLimiter, Verdict } from "./http-limiter.js";
import {
  type Callback,
  type HeaderChoice,
  LimiterTiers,
  infoOf as infoOfVerdict,
  type PortcullisExtras,
  type RateLimitInfo,
  RequestKeys,
  responseHeaders,
  standardHeadersOption,
  oneRouteTable,
  whenReady,
} from "./one-route.js";
import { type Next, runLimiter } from "./adapters/node.js";
import { DEFAULT_WINDOW_MS, refuseUnsupported } from "./one-liner-options.js";

type Awaitable<T> = T | Promise<T>;

/** Options with express-rate-limit's names, plus what Portcullis adds (see docs/http.md for the mapping). */
export interface RateLimitOptions<Req extends IncomingMessage = IncomingMessage, Res extends ServerResponse = ServerResponse> extends PortcullisExtras {
  /** Length of the window in ms (default 60,000). */
  windowMs?: number;
  /** Requests allowed per window and key (default 5, as express-rate-limit); a function gives each request its tier. */
  limit?: number | Callback<[req: Req, res: Res], Awaitable<number>>;
  /** The older name of `limit`. */
  max?: number | Callback<[req: Req, res: Res], Awaitable<number>>;
  /** What requests are counted by (default: the client address). */
  keyGenerator?(req: Req, res: Res): Awaitable<string>;
  /** Requests for which this returns true are neither counted nor limited. */
  skip?(req: Req, res: Res): Awaitable<boolean>;
  /**
   * Answers a refused request instead of the default (status and `message`).
   * The rate-limit headers and Retry-After are already set when it is called.
   */
  handler?(req: Req, res: Res, next: Next, options: RateLimitUsedOptions): void;
  /** Status of a refusal (default 429). */
  statusCode?: number;
  /** Body of a refusal: text, an object (sent as JSON) or a function of the request; default a problem+json document. */
  message?: string | object | Callback<[req: Req, res: Res], Awaitable<string | object>>;
  /** RateLimit draft headers: "draft-8" (default), "draft-7", "draft-6" (also `true`) or false. */
  standardHeaders?: boolean | "draft-6" | "draft-7" | "draft-8";
  /** X-RateLimit-Limit / -Remaining / -Reset (reset as epoch seconds); default false. */
  legacyHeaders?: boolean;
  /** Policy name in the draft-8 headers and in logs (default like express-rate-limit: "30-in-1min"). */
  identifier?: string;
  /** Property of the request that receives `{ limit, used, remaining, resetTime }` (default "rateLimit"); false for none. */
  requestPropertyName?: string | false;
  /** Prefix length of IPv6 client addresses (default 56, as express-rate-limit); false counts each address alone. */
  ipv6Subnet?: number | false;
}

/** What a custom `handler` receives as its fourth argument. */
export interface RateLimitUsedOptions {
  statusCode: number;
  windowMs: number;
  limit: number;
  /** The limit's state for this request (also on the request under `requestPropertyName`). */
  info: RateLimitInfo | undefined;
  message: unknown;
}

export interface RateLimitMiddleware<Req extends IncomingMessage = IncomingMessage, Res extends ServerResponse = ServerResponse> {
  (req: Req, res: Res, next: Next): void;
  /**
   * The route-table limiter underneath (lockout API: recordFailure /
   * recordSuccess, queue size, client address rule). With a limit function,
   * the one of the first tier used.
   */
  readonly limiter: HttpLimiter | undefined;
  /** Stops the queue timers of every tier. */
  dispose(): void;
}

/** Options Portcullis refuses by name, with what to use instead (silently ignoring them would change behaviour). */
const UNSUPPORTED: Record<string, string> = {
  skipSuccessfulRequests: "count only failures with `lockout` (failureStatuses), or `skip`",
  skipFailedRequests: "use `skip`",
  requestWasSuccessful: "use `lockout.failureStatuses`",
  passOnStoreError: "set the store's own failure mode (RedisStore `onFailure`)",
};

const DEFAULT_LIMIT = 5;

export function rateLimit<Req extends IncomingMessage = IncomingMessage, Res extends ServerResponse = ServerResponse>(o: RateLimitOptions<Req, Res> = {}): RateLimitMiddleware<Req, Res> {
  if (o === null || typeof o !== "object") throw new InvalidArgumentError("options", "must be an object");
  refuseUnsupported(o, UNSUPPORTED, true);
  const windowMs = o.windowMs ?? DEFAULT_WINDOW_MS;
  const limitOpt = o.limit ?? o.max ?? DEFAULT_LIMIT;
  if (typeof limitOpt !== "number" && typeof limitOpt !== "function") throw new InvalidArgumentError(o.limit !== undefined ? "limit" : "max", `must be a number or a function, got ${JSON.stringify(limitOpt)}`);
  const statusCode = o.statusCode ?? 429;
  if (!Number.isInteger(statusCode) || statusCode < 400 || statusCode > 599) throw new InvalidArgumentError("statusCode", `must be an HTTP error status, got ${JSON.stringify(statusCode)}`);
  const choice: HeaderChoice = { standard: standardHeadersOption(o.standardHeaders), x: o.legacyHeaders ?? false };
  const prop = o.requestPropertyName ?? "rateLimit";
  const keys = new RequestKeys();
  const ipv6Prefix = o.ipv6Subnet === false ? 128 : (o.ipv6Subnet ?? 56);
  if (typeof limitOpt === "function" && o.lockout !== undefined && o.lockout !== false) {
    throw new InvalidArgumentError("lockout", "cannot be combined with a limit function (each tier would keep its own lockout); use a number");
  }
  if (typeof limitOpt === "function" && o.identifier !== undefined) throw new InvalidArgumentError("identifier", "cannot name the tiers of a limit function; leave it out");
  const table = (limit: number) =>
    oneRouteTable({
      ...o,
      name: o.identifier ?? identifier(limit, windowMs),
      // With a limit function each tier counts apart: its scope names its number.
      scope: typeof limitOpt === "function" ? `${o.scope ?? "rate-limit"}:${limit}` : o.scope,
      limit,
      windowMs,
      ipv6Prefix,
      ...(o.keyGenerator !== undefined ? { key: keys.fn } : {}),
    });
  const tiers = new LimiterTiers(table);
  // A fixed limit is built now, so that bad options fail at startup, not on the first request.
  const fixed = typeof limitOpt === "number" ? tiers.get(limitOpt) : undefined;
  let first = fixed;

  const mw = (req: Req, res: Res, next: Next): void => {
    const fail = (e: unknown) => next(e);
    const go = (limiter: HttpLimiter) => {
      first ??= limiter;
      const url = (req as { originalUrl?: string }).originalUrl ?? req.url ?? "/";
      runLimiter(limiter, req, res, url, next, (v) => {
        // The answer runs application code (handler, message): its errors go to next, not up the
        // stack. The application's own next step runs outside, so its errors are not caught here.
        let pass: boolean;
        try {
          pass = answer(limiter, v, req, res, next);
        } catch (e) {
          next(e);
          return;
        }
        if (pass) next();
      });
    };
    const counted = () => {
      const limiter = () => (fixed !== undefined ? go(fixed) : whenReady((limitOpt as (q: Req, s: Res) => Awaitable<number>)(req, res), (n) => go(tiers.get(n)), fail));
      if (o.keyGenerator === undefined) return limiter();
      whenReady(
        o.keyGenerator(req, res),
        (k) => {
          keys.set(req, k, "keyGenerator");
          limiter();
        },
        fail,
      );
    };
    try {
      if (o.skip === undefined) counted();
      else whenReady(o.skip(req, res), (s) => (s ? next() : counted()), fail);
    } catch (e) {
      next(e);
    }
  };

  /** Answers a refusal, or sets what an allowed request carries on; true when the request goes on. */
  const answer = (limiter: HttpLimiter, v: Verdict, req: Req, res: Res, next: Next): boolean => {
    if (v.aborted) return false;
    const now = limiter.clock.wallNow();
    const headers = responseHeaders(v, choice, now);
    for (const k in headers) res.setHeader(k, headers[k]!);
    const info = infoWithKey(v, now, keys.get(req));
    if (prop !== false && info !== undefined) (req as unknown as Record<string, unknown>)[prop] = info;
    if (v.allowed) {
      const track = v.lockout;
      if (track !== undefined) res.once("finish", () => limiter.observeStatus(track, res.statusCode));
      return true;
    }
    res.statusCode = statusCode;
    if (o.handler !== undefined) {
      o.handler(req, res, next, { statusCode, windowMs, limit: info?.limit ?? 0, info, message: o.message });
      return false;
    }
    if (o.message === undefined) {
      if (v.body === undefined) res.end();
      else {
        res.setHeader("content-type", v.headers["content-type"]!);
        // The problem document states its status: the one actually sent.
        res.end(statusCode === 429 ? v.body : JSON.stringify({ ...(JSON.parse(v.body) as object), status: statusCode }));
      }
      return false;
    }
    const m = o.message;
    whenReady(typeof m === "function" ? (m as (q: Req, s: Res) => Awaitable<string | object>)(req, res) : m, (body) => send(res, body), (e) => next(e));
    return false;
  };

  return Object.assign(mw, {
    get limiter() {
      return first;
    },
    dispose: () => tiers.dispose(),
  });
}

function infoWithKey(v: Verdict, now: number, key: string | undefined): RateLimitInfo | undefined {
  const info = infoOfVerdict(v, now);
  if (info !== undefined && key !== undefined) info.key = key;
  return info;
}

function send(res: ServerResponse, body: string | object): void {
  if (res.writableEnded) return;
  if (typeof body === "string") {
    if (!res.hasHeader("content-type")) res.setHeader("content-type", "text/plain; charset=utf-8");
    res.end(body);
    return;
  }
  res.setHeader("content-type", "application/json; charset=utf-8");
  res.end(JSON.stringify(body));
}

/** express-rate-limit's default identifier: "30-in-1min", "100-in-15min", "1000-in-1hr". */
export function identifier(limit: number, windowMs: number): string {
  const s = windowMs / 1000;
  const m = s / 60;
  const h = m / 60;
  const d = h / 24;
  const dur = s < 60 ? `${s}sec` : m < 60 ? `${m}min` : h < 24 ? `${h}hr${h > 1 ? "s" : ""}` : `${d}day${d > 1 ? "s" : ""}`;
  return `${limit}-in-${dur}`;
}
