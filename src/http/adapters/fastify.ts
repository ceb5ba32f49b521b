/**
 * Fastify plugin. It runs in `onRequest` (before the body is read), or in
 * `preHandler` when a route keys on a form field and so needs the parsed
 * body; if no parser for form bodies is registered, it registers a small one.
 * The plugin is not encapsulated (Fastify's "skip-override"), so its hook
 * covers every route of the instance it is registered on.
 */
import type { FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest } from "fastify";
import { parseForm } from "../form-body.js";
import { HttpLimiter, type Verdict } from "../http-limiter.js";
import type { HttpLimiterOptions } from "../types.js";
import { NodeRequestInfo, closeSignal } from "./node.js";

export type FastifyRateLimitOptions = HttpLimiterOptions | { limiter: HttpLimiter };

declare module "fastify" {
  interface FastifyInstance {
    /** The limiter of the Portcullis plugin (lockout API, queue size, client IP rule). */
    portcullis: HttpLimiter;
  }
}

function plugin(fastify: FastifyInstance, opts: FastifyRateLimitOptions, done: (err?: Error) => void): void {
  let limiter: HttpLimiter;
  try {
    limiter = "limiter" in opts && opts.limiter instanceof HttpLimiter ? opts.limiter : new HttpLimiter(opts as HttpLimiterOptions);
  } catch (e) {
    done(e as Error);
    return;
  }
  const form = "application/x-www-form-urlencoded";
  if (limiter.needsBody && !fastify.hasContentTypeParser(form)) {
    fastify.addContentTypeParser(form, { parseAs: "buffer", bodyLimit: limiter.formBodyLimit }, (_req, body, next) => next(null, parseForm(body as Buffer)));
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
  if (limiter.needsBody) fastify.addHook("preHandler", hook);
  else fastify.addHook("onRequest", hook);
  fastify.addHook("onClose", (_instance, next) => {
    limiter.dispose();
    next();
  });
  fastify.decorate("portcullis", limiter);
  done();
}

// Fastify's marker for a plugin whose hooks apply to the instance it is registered on (what fastify-plugin sets).
Object.assign(plugin, { [Symbol.for("skip-override")]: true, [Symbol.for("fastify.display-name")]: "portcullis" });

/** `fastify.register(fastifyRateLimit, { routes: [...] })`; the limiter is then `fastify.portcullis`. */
export const fastifyRateLimit: FastifyPluginCallback<FastifyRateLimitOptions> = plugin;
