/**
 * Fastify plugin. It runs in `onRequest` (before the body is read), or in
 * `preHandler` when a route keys on a form field and so needs the parsed
 * body; if no parser for form bodies is registered, it registers a small one.
 * The plugin is not encapsulated (Fastify's "skip-override"), so its hook
 * covers every route of the instance it is registered on.
 *
 * Its types name no Fastify type (only the few members it uses), so that
 * portcullis/http type-checks in projects without Fastify. A Fastify user
 * who wants `fastify.portcullis` typed adds, once:
 *   declare module "fastify" { interface FastifyInstance { portcullis: HttpLimiter } }
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { parseForm } from "../form-body.js";
import { HttpLimiter, type Verdict } from "../http-limiter.js";
import type { HttpLimiterOptions } from "../types.js";
import { NodeRequestInfo, closeSignal } from "./node.js";

export type FastifyRateLimitOptions = HttpLimiterOptions | { limiter: HttpLimiter };

/** The members of Fastify's instance, request and reply the plugin uses. */
interface FastifyInstance {
  addHook(name: string, fn: (...args: never[]) => unknown): unknown;
  hasContentTypeParser(type: string): boolean;
  addContentTypeParser(type: string, o: object, fn: (req: unknown, body: Buffer, done: (e: Error | null, v?: unknown) => void) => void): unknown;
  decorate(name: string, v: unknown): unknown;
}
interface FastifyRequest {
  raw: IncomingMessage;
  url: string;
  body?: unknown;
}
interface FastifyReply {
  raw: ServerResponse;
  code(n: number): FastifyReply;
  headers(h: Record<string, string>): FastifyReply;
  send(b?: unknown): FastifyReply;
}

function plugin(instance: unknown, opts: FastifyRateLimitOptions, done: (err?: Error) => void): void {
  const fastify = instance as FastifyInstance;
  let limiter: HttpLimiter;
  try {
    limiter = "limiter" in opts && opts.limiter instanceof HttpLimiter ? opts.limiter : new HttpLimiter(opts as HttpLimiterOptions);
  } catch (e) {
    done(e as Error);
    return;
  }
  const form = "application/x-www-form-urlencoded";
  if (limiter.needsBody && !fastify.hasContentTypeParser(form)) {
    fastify.addContentTypeParser(form, { parseAs: "buffer", bodyLimit: limiter.formBodyLimit }, (_req, body, next) => next(null, parseForm(body)));
  }
  const apply = (v: Verdict, request: FastifyRequest, reply: FastifyReply, next: (err?: Error) => void) => {
    if (v.aborted) return;
    reply.headers(v.headers);
    if (!v.allowed) {
      // Answering without calling next() ends the request here.
      reply.code(v.status).send(v.body ?? "");
      return;
    }
    const track = v.lockout;
    if (track !== undefined) reply.raw.once("finish", () => limiter.observeStatus(track, reply.raw.statusCode));
    next();
  };
  const hook = (request: FastifyRequest, reply: FastifyReply, next: (err?: Error) => void) => {
    let v: Verdict | Promise<Verdict>;
    try {
      v = limiter.decide(new NodeRequestInfo(request.raw, request.url, request.body, request), () => closeSignal(reply.raw));
    } catch (e) {
      next(e as Error);
      return;
    }
    if (v instanceof Promise) v.then((x) => apply(x, request, reply, next), next);
    else apply(v, request, reply, next);
  };
  fastify.addHook(limiter.needsBody ? "preHandler" : "onRequest", hook as (...args: never[]) => unknown);
  fastify.addHook("onClose", ((_instance: unknown, next: () => void) => {
    limiter.dispose();
    next();
  }) as (...args: never[]) => unknown);
  fastify.decorate("portcullis", limiter);
  done();
}

// Fastify's marker for a plugin whose hooks apply to the instance it is registered on (what fastify-plugin sets).
Object.assign(plugin, { [Symbol.for("skip-override")]: true, [Symbol.for("fastify.display-name")]: "portcullis" });

/** `fastify.register(fastifyRateLimit, { routes: [...] })`; the limiter is then `fastify.portcullis`. */
export const fastifyRateLimit: (instance: unknown, opts: FastifyRateLimitOptions, done: (err?: Error) => void) => void = plugin;
