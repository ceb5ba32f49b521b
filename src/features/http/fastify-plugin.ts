/**
 * `fastify.register(rateLimitPlugin, { max: 100, timeWindow: "1 minute" })`:
 * the one-line Fastify plugin, with @fastify/rate-limit's option names (and
 * its X-RateLimit-* headers by default), on a route table of one route (see
 * one-route.ts). It applies to every route of the instance it is registered
 * on (not encapsulated, as @fastify/rate-limit with `global: true`).
 *
 * Its types name no Fastify type, so that importing portcullis/http needs
 * no Fastify types; with Fastify, annotate the callbacks' request parameter
 * with Fastify's own FastifyRequest.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { InvalidArgumentError } from "../../core/errors.js";
import { TrustedProxies, resolveClientIp } from "./client-ip.js";
import { parseForm } from "./form-body.js";
import type { HttpLimiter, Verdict } from "./http-limiter.js";
import { type Callback, LimiterTiers, type PortcullisExtras, RequestKeys, oneRouteTable, responseHeaders, standardHeadersOption, whenReady } from "./one-route.js";
import { parseDuration } from "./duration.js";
import { DEFAULT_WINDOW_MS, refuseUnsupported } from "./one-liner-options.js";
import { NodeRequestInfo, closeSignal } from "./adapters/node.js";

type Awaitable<T> = T | Promise<T>;

/** The parts of a Fastify request the plugin reads. */
export interface FastifyRequestLike {
  raw: IncomingMessage;
  url: string;
  headers: IncomingHttpHeaders;
  body?: unknown;
}

/** What `errorResponseBuilder` receives, as in @fastify/rate-limit. */
export interface RateLimitErrorContext {
  statusCode: number;
  ban: false;
  max: number;
  /** Milliseconds until a request fits again. */
  ttl: number;
  /** The same in words, "12 seconds". */
  after: string;
}

type HeaderFlags = Partial<Record<"x-ratelimit-limit" | "x-ratelimit-remaining" | "x-ratelimit-reset" | "retry-after" | "ratelimit-limit" | "ratelimit-remaining" | "ratelimit-reset", boolean>>;

/** Options with @fastify/rate-limit's names, plus what Portcullis adds (see docs/http.md for the mapping). */
export interface RateLimitPluginOptions<Req = FastifyRequestLike> extends PortcullisExtras {
  /** Requests per `timeWindow` and key (default 1000, as @fastify/rate-limit); a function gives each request its tier. */
  max?: number | Callback<[req: Req, key: string], Awaitable<number>>;
  /** The window: milliseconds, or a duration such as "1 minute", "30s" (default 1 minute). */
  timeWindow?: number | string;
  /** What requests are counted by (default: the client address). */
  keyGenerator?(req: Req): Awaitable<string | number>;
  /** Keys (client addresses, unless `keyGenerator` is set) that are never limited, or a predicate. */
  allowList?: string[] | Callback<[req: Req, key: string], Awaitable<boolean>>;
  /** The body of a refusal; an Error is passed to Fastify's error handler, anything else sent as is (default: a problem+json document). */
  errorResponseBuilder?(req: Req, context: RateLimitErrorContext): unknown;
  /** Which headers a refusal carries (each default true). */
  addHeaders?: HeaderFlags;
  /** Which headers an allowed response carries (each default true). */
  addHeadersOnExceeding?: HeaderFlags;
  /** Name the triple RateLimit-Limit / -Remaining / -Reset instead of X-RateLimit-*. */
  enableDraftSpec?: boolean;
  /** RateLimit draft headers as well: "draft-8" (default unless enableDraftSpec), "draft-7", "draft-6", or false. */
  standardHeaders?: boolean | "draft-6" | "draft-7" | "draft-8";
  /** Called for each refused request. */
  onExceeded?(req: Req, key: string): void;
  /** Called for each request the limit lets through. */
  onExceeding?(req: Req, key: string): void;
  /** The hook the check runs in (default onRequest, or preHandler when the lockout reads a form body). */
  hook?: "onRequest" | "preParsing" | "preValidation" | "preHandler";
  /** Prefix of the counts in the store (the same as `scope`). */
  nameSpace?: string;
  /** Prefix length of IPv6 client addresses (default 64, as @fastify/rate-limit). */
  ipv6Subnet?: number;
  /** Must be true (or left out): per-route limits are the route table's job (`fastifyRateLimit` with `routes`). */
  global?: boolean;
}

/** Minimal view of the Fastify instance and reply; the plugin is typed without Fastify's types. */
interface Instance {
  addHook(name: string, fn: (...args: never[]) => unknown): unknown;
  hasContentTypeParser(type: string): boolean;
  addContentTypeParser(type: string, o: object, fn: (req: unknown, body: Buffer, done: (e: Error | null, v?: unknown) => void) => void): unknown;
  hasDecorator(name: string): boolean;
  decorate(name: string, v: unknown): unknown;
}
interface Reply {
  raw: ServerResponse;
  code(n: number): Reply;
  header(k: string, v: string): Reply;
  send(b?: unknown): Reply;
}
type Done = (err?: Error) => void;

const UNSUPPORTED: Record<string, string> = {
  redis: "pass `store: new RedisStore({ client })` from portcullis/redis",
  ban: "use `lockout`",
  continueExceeding: "not available",
  skipOnError: "set the store's own failure mode (RedisStore `onFailure`)",
  exponentialBackoff: "use `lockout` (its lock grows by `multiplier`)",
};

const DEFAULT_MAX = 1000;
const FORM = "application/x-www-form-urlencoded";

function plugin(instance: unknown, o: RateLimitPluginOptions, done: Done): void {
  try {
    register(instance as Instance, o ?? {});
  } catch (e) {
    done(e as Error);
    return;
  }
  done();
}

function register(fastify: Instance, o: RateLimitPluginOptions): void {
  refuseUnsupported(o, UNSUPPORTED, false);
  if (o.global === false) throw new InvalidArgumentError("global", "per-route limits are set with the route table: register fastifyRateLimit with `routes`");
  if (typeof o.store === "function") throw new InvalidArgumentError("store", "must be a store instance (MemoryStore, or RedisStore from portcullis/redis), not a class");
  const windowMs = parseDuration(o.timeWindow ?? DEFAULT_WINDOW_MS, "timeWindow");
  const maxOpt = o.max ?? DEFAULT_MAX;
  if (typeof maxOpt !== "number" && typeof maxOpt !== "function") throw new InvalidArgumentError("max", `must be a number or a function, got ${JSON.stringify(maxOpt)}`);
  if (typeof maxOpt === "function" && o.lockout !== undefined && o.lockout !== false) {
    throw new InvalidArgumentError("lockout", "cannot be combined with a max function (each tier would keep its own lockout); use a number");
  }
  const draft = o.enableDraftSpec === true;
  const standard = o.standardHeaders === undefined && draft ? false : standardHeadersOption(o.standardHeaders);
  const keys = new RequestKeys();
  const scope = o.scope ?? o.nameSpace;
  const tiers = new LimiterTiers((limit) =>
    oneRouteTable({
      ...o,
      name: `${limit}-per-${windowMs / 1000}s`,
      scope: typeof maxOpt === "function" ? `${scope ?? "rate-limit"}:${limit}` : scope,
      limit,
      windowMs,
      ipv6Prefix: o.ipv6Subnet ?? 64,
      ...(o.keyGenerator !== undefined ? { key: keys.fn } : {}),
    }),
  );
  const fixed = typeof maxOpt === "number" ? tiers.get(maxOpt) : undefined;
  const needsBody = fixed?.needsBody ?? false;
  if (needsBody && !fastify.hasContentTypeParser(FORM)) {
    fastify.addContentTypeParser(FORM, { parseAs: "buffer", bodyLimit: fixed!.formBodyLimit }, (_req, body, next) => next(null, parseForm(body)));
  }
  const proxies = new TrustedProxies(o.trustedProxies ?? []);
  const allow = o.allowList;
  const allowSet = Array.isArray(allow) ? new Set(allow) : undefined;

  const apply = (limiter: HttpLimiter, v: Verdict, request: FastifyRequestLike, reply: Reply, key: string, next: Done): void => {
    if (v.aborted) return;
    const headers = responseHeaders(v, { standard, x: true, xResetRelative: true }, limiter.clock.wallNow());
    const flags = v.allowed ? o.addHeadersOnExceeding : o.addHeaders;
    for (const k in headers) {
      const name = draft && k.startsWith("x-ratelimit-") ? k.slice(2) : k;
      // The triple and Retry-After follow the peer's switches; the draft headers follow standardHeaders.
      if (k.startsWith("x-") || k === "retry-after") {
        if (flags?.[name as keyof HeaderFlags] === false) continue;
      }
      reply.header(name, headers[k]!);
    }
    if (v.allowed) {
      const track = v.lockout;
      if (track !== undefined) reply.raw.once("finish", () => limiter.observeStatus(track, reply.raw.statusCode));
      o.onExceeding?.(request, key);
      next();
      return;
    }
    o.onExceeded?.(request, key);
    if (o.errorResponseBuilder !== undefined) {
      const retry = Number(v.headers["retry-after"] ?? "1");
      const limit = Number(v.headers["ratelimit-limit"] ?? "0");
      const body = o.errorResponseBuilder(request, { statusCode: 429, ban: false, max: limit, ttl: retry * 1000, after: `${retry} second${retry === 1 ? "" : "s"}` });
      if (body instanceof Error) {
        next(body);
        return;
      }
      const status = (body as { statusCode?: unknown } | null)?.statusCode;
      reply.code(typeof status === "number" ? status : 429).send(body);
      return;
    }
    if (v.body !== undefined) reply.header("content-type", v.headers["content-type"]!);
    // Answering without calling next() ends the request here.
    reply.code(v.status).send(v.body ?? "");
  };

  const hook = (request: FastifyRequestLike, reply: Reply, next: Done): void => {
    const fail = (e: unknown) => next(e as Error);
    const check = (key: string) => {
      const run = (limiter: HttpLimiter) => {
        const v = limiter.decide(new NodeRequestInfo(request.raw, request.url, request.body, request), () => closeSignal(reply.raw));
        // apply runs application code (errorResponseBuilder, onExceeded): whenReady hands its errors to Fastify.
        whenReady(v, (x) => apply(limiter, x, request, reply, key, next), fail);
      };
      if (fixed !== undefined) run(fixed);
      else whenReady((maxOpt as (q: FastifyRequestLike, k: string) => Awaitable<number>)(request, key), (n) => run(tiers.get(n)), fail);
    };
    const afterAllowList = (key: string) => {
      if (allowSet !== undefined) return allowSet.has(key) ? next() : check(key);
      if (typeof allow === "function") return whenReady(allow(request, key), (ok) => (ok ? next() : check(key)), fail);
      check(key);
    };
    try {
      if (o.keyGenerator === undefined) {
        // Only read the client address when something needs it as a key.
        const needsIp = allow !== undefined || typeof maxOpt === "function" || o.onExceeded !== undefined || o.onExceeding !== undefined || o.errorResponseBuilder !== undefined;
        afterAllowList(needsIp ? clientKey(proxies, fixed, request) : "");
        return;
      }
      whenReady(
        o.keyGenerator(request),
        (k) => {
          keys.set(request, k, "keyGenerator");
          afterAllowList(String(k));
        },
        fail,
      );
    } catch (e) {
      fail(e);
    }
  };

  const hookName = o.hook ?? (needsBody ? "preHandler" : "onRequest");
  if (!["onRequest", "preParsing", "preValidation", "preHandler"].includes(hookName)) {
    throw new InvalidArgumentError("hook", `must be onRequest, preParsing, preValidation or preHandler; got ${JSON.stringify(hookName)}`);
  }
  // preParsing hands the payload stream through its callback; the other hooks take (request, reply, done).
  const fn =
    hookName === "preParsing"
      ? (request: FastifyRequestLike, reply: Reply, payload: unknown, done: (err: Error | null, p?: unknown) => void) => hook(request, reply, (err) => done(err ?? null, payload))
      : hook;
  fastify.addHook(hookName, fn as (...args: never[]) => unknown);
  fastify.addHook("onClose", ((_i: unknown, next: Done) => {
    tiers.dispose();
    next();
  }) as (...args: never[]) => unknown);
  if (fixed !== undefined && !fastify.hasDecorator("portcullis")) fastify.decorate("portcullis", fixed);
}

/** The client address under the trusted-proxy rules (the same for every tier). */
function clientKey(proxies: TrustedProxies, fixed: HttpLimiter | undefined, request: FastifyRequestLike): string {
  const raw = request.raw;
  if (fixed !== undefined) return fixed.clientIp({ remoteAddress: raw.socket.remoteAddress, headers: raw.headers, rawHeaders: raw.rawHeaders });
  return resolveClientIp(raw.socket.remoteAddress, raw.headers, proxies).ip;
}

// Fastify's marker for a plugin whose hooks apply to the instance it is registered on (what fastify-plugin sets).
Object.assign(plugin, { [Symbol.for("skip-override")]: true, [Symbol.for("fastify.display-name")]: "portcullis-rate-limit" });

/**
 * `fastify.register(rateLimitPlugin, { max, timeWindow, ... })`. With a
 * fixed `max`, the limiter underneath is `fastify.portcullis` (lockout API),
 * unless the instance already has one.
 */
export const rateLimitPlugin: (instance: unknown, opts: RateLimitPluginOptions, done: Done) => void = plugin;
