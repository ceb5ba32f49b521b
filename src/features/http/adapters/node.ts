/**
 * node:http adapter: a connect-style middleware `(req, res, next)` and a
 * handler wrapper for `http.createServer`. Express reuses it; the Fastify
 * plugin uses the same pieces through its own hook.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import { BodyTooLargeError, RAW_BODY, isForm, parseForm, readBody } from "../form-body.js";
import { HttpLimiter, type Verdict } from "../http-limiter.js";
import type { HttpLimiterOptions, RequestInfo } from "../types.js";

export type Next = (err?: unknown) => void;

export interface NodeRateLimit {
  (req: IncomingMessage, res: ServerResponse, next: Next): void;
  readonly limiter: HttpLimiter;
}

/** How long reading a form body for a key may take before the request is refused. */
const BODY_TIMEOUT_MS = 10_000;

type WithBody = IncomingMessage & { body?: unknown; _body?: boolean; [RAW_BODY]?: Buffer };

export function toLimiter(o: HttpLimiter | HttpLimiterOptions): HttpLimiter {
  return o instanceof HttpLimiter ? o : new HttpLimiter(o);
}

/** A signal aborted when the response's connection closes before the response was sent. */
export function closeSignal(res: ServerResponse): AbortSignal {
  const ac = new AbortController();
  if (res.destroyed || res.socket?.destroyed) ac.abort();
  else res.once("close", () => ac.abort());
  return ac.signal;
}

/**
 * A node:http request as the core sees it. The headers are read through a
 * getter, so that Node only builds its header object when something asks for
 * it (a header key, a forwarding header, a log line).
 */
export class NodeRequestInfo implements RequestInfo {
  constructor(
    private readonly req: IncomingMessage,
    readonly url: string,
    readonly body: unknown,
    readonly raw: unknown,
  ) {}
  get method(): string {
    return this.req.method ?? "GET";
  }
  get headers(): IncomingMessage["headers"] {
    return this.req.headers;
  }
  get rawHeaders(): readonly string[] {
    return this.req.rawHeaders;
  }
  get remoteAddress(): string | undefined {
    return this.req.socket.remoteAddress;
  }
}

/** Writes a verdict: rejections are answered here; allowed requests get their headers and go on. */
export function applyVerdict(limiter: HttpLimiter, v: Verdict, res: ServerResponse, next: Next): void {
  if (v.aborted) return;
  const h = v.headers;
  for (const k in h) res.setHeader(k, h[k]!);
  if (!v.allowed) {
    res.statusCode = v.status;
    res.end(v.body);
    return;
  }
  const track = v.lockout;
  if (track !== undefined) res.once("finish", () => limiter.observeStatus(track, res.statusCode));
  next();
}

/**
 * Runs the limiter for one request, reading a form body first if a matching
 * route keys on a form field. `apply` answers the verdict (default: the
 * route table's own answer; the one-line middleware brings its own).
 */
export function runLimiter(
  limiter: HttpLimiter,
  req: IncomingMessage,
  res: ServerResponse,
  url: string,
  next: Next,
  apply?: (v: Verdict) => void,
): void {
  const r = req as WithBody;
  if (limiter.needsBody && !bodyParsed(r) && isForm(req.headers) && limiter.wantsBody(req.method ?? "GET", url)) {
    readBody(req, limiter.formBodyLimit, BODY_TIMEOUT_MS, limiter.clock).then(
      (buf) => {
        r.body = parseForm(buf);
        r[RAW_BODY] = buf;
        // body-parser's marker: a parser later in the chain leaves the body as is.
        r._body = true;
        decideAndApply(limiter, req, res, url, next, apply);
      },
      (e: unknown) => refuse(res, e instanceof BodyTooLargeError ? 413 : 400),
    );
    return;
  }
  decideAndApply(limiter, req, res, url, next, apply);
}

/**
 * Whether a body parser already read the body. body-parser marks what it
 * parsed with `_body`, but its JSON parser also sets `req.body = {}` on
 * requests it skips, so an empty object with an unread stream is not parsed.
 */
function bodyParsed(r: WithBody): boolean {
  if (r._body === true || r.readableEnded) return true;
  const b = r.body;
  if (b === undefined) return false;
  return !(typeof b === "object" && b !== null && Object.keys(b).length === 0);
}

function decideAndApply(limiter: HttpLimiter, req: IncomingMessage, res: ServerResponse, url: string, next: Next, apply: ((v: Verdict) => void) | undefined): void {
  let v: Verdict | Promise<Verdict>;
  try {
    v = limiter.decide(new NodeRequestInfo(req, url, (req as WithBody).body, req), () => closeSignal(res));
  } catch (e) {
    next(e);
    return;
  }
  // Without an `apply`, no closure is made for the common (synchronous) answer.
  if (apply !== undefined) {
    if (v instanceof Promise) v.then(apply, next);
    else apply(v);
  } else if (v instanceof Promise) v.then((x) => applyVerdict(limiter, x, res, next), next);
  else applyVerdict(limiter, v, res, next);
}

function refuse(res: ServerResponse, status: number): void {
  if (res.headersSent || res.destroyed) return;
  res.statusCode = status;
  res.setHeader("Connection", "close");
  res.end();
}

/** Connect-style middleware for node:http (and anything that calls `(req, res, next)`). */
export function nodeRateLimit(o: HttpLimiter | HttpLimiterOptions): NodeRateLimit {
  const limiter = toLimiter(o);
  const mw = (req: IncomingMessage, res: ServerResponse, next: Next) => runLimiter(limiter, req, res, req.url ?? "/", next);
  return Object.assign(mw, { limiter });
}

/**
 * Wraps a request listener: `http.createServer(withRateLimit(opts, handler))`.
 * An error inside the limiter answers 500 without details (never a stack trace).
 */
export function withRateLimit(o: HttpLimiter | HttpLimiterOptions, handler: RequestListener): RequestListener & { limiter: HttpLimiter } {
  const limiter = toLimiter(o);
  const listener: RequestListener = (req, res) =>
    runLimiter(limiter, req, res, req.url ?? "/", (err) => {
      if (err === undefined) handler(req, res);
      else refuse(res, 500);
    });
  return Object.assign(listener, { limiter });
}
