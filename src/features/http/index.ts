/**
 * Portcullis for HTTP: per-route limits with queueing and standard headers,
 * subject lockout, profiles and trusted proxies, as middleware for
 * node:http, Express and Fastify, and as a rate-limiting reverse proxy.
 */
export { HttpLimiter, type Verdict, type LockoutTrack } from "./http-limiter.js";
export type {
  RequestInfo,
  KeyContext,
  KeyFunction,
  KeySpec,
  IdentitySource,
  LimitConfig,
  PartialLimitConfig,
  RouteConfig,
  RouteLockoutConfig,
  LockoutConfig,
  HeaderFormat,
  HeaderOptions,
  ProblemOptions,
  HttpLogger,
  HttpHooks,
  HttpLimitedEvent,
  CounterLike,
  HttpLimiterOptions,
} from "./types.js";
export { PROFILES, resolveProfile, type ProfileName, type ProfileSettings, type ProfileOverrides } from "./profiles.js";
export { Lockout, type LockoutFailure } from "./lockout.js";
export { TrustedProxies, resolveClientIp, type ClientIp } from "./client-ip.js";
export { QUOTA_EXCEEDED_TYPE, PROBLEM_CONTENT_TYPE } from "./problem.js";
export { requestPath } from "./path.js";
export { nodeRateLimit, withRateLimit, type NodeRateLimit } from "./adapters/node.js";
export { expressRateLimit, type ExpressRateLimit } from "./adapters/express.js";
export { fastifyRateLimit, type FastifyRateLimitOptions } from "./adapters/fastify.js";
export { createHttpProxyServer, type HttpProxyOptions, type HttpProxyServer } from "./proxy/server.js";
export { rateLimit, type RateLimitOptions, type RateLimitMiddleware, type RateLimitUsedOptions } from "./rate-limit.js";
export { rateLimitPlugin, type RateLimitPluginOptions, type RateLimitErrorContext, type FastifyRequestLike } from "./fastify-plugin.js";
export type { RateLimitInfo, StandardHeaders, Algorithm, OneRouteLockout, PortcullisExtras } from "./one-route.js";
