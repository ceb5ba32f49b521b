/**
 * Express middleware (Express 4 and 5 share the `(req, res, next)` contract).
 * Routes are matched on `req.originalUrl`, so mounting the middleware under a
 * prefix does not change what it sees. The client address comes from the
 * socket under our own trusted-proxy rules, not from Express's `trust proxy`,
 * so the two settings cannot disagree about who the client is.
 * An already parsed `req.body` (express.urlencoded) is used for form-field
 * keys; without one, the form body is read and left on `req.body`.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { HttpLimiter } from "../http-limiter.js";
import type { HttpLimiterOptions } from "../types.js";
import { type Next, runLimiter, toLimiter } from "./node.js";

type ExpressLikeRequest = IncomingMessage & { originalUrl?: string };

export interface ExpressRateLimit {
  (req: ExpressLikeRequest, res: ServerResponse, next: Next): void;
  readonly limiter: HttpLimiter;
}

export function expressRateLimit(o: HttpLimiter | HttpLimiterOptions): ExpressRateLimit {
  const limiter = toLimiter(o);
  const mw = (req: ExpressLikeRequest, res: ServerResponse, next: Next) => runLimiter(limiter, req, res, req.originalUrl ?? req.url ?? "/", next);
  return Object.assign(mw, { limiter });
}
