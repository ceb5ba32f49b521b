/**
 * The framework-neutral core of the HTTP layer: given a request, find its
 * route, resolve the client address, check the subject lockout and the
 * route's limits, and answer with a verdict (pass, or 429 with headers and a
 * problem document). Adapters for node:http, Express, Fastify and the
 * reverse proxy only translate requests in and verdicts out.
 *
 * On the memory store the common case (an allowed request) answers
 * synchronously; only a request that has to wait in a fixed window's queue
 * gets a promise. On a shared store (Redis) every matched request is
 * answered with a promise: one store call per check, all or nothing.
 */
import { type Clock, systemClock } from "../../core/clock.js";
import { AcquireAbortedError, InvalidArgumentError } from "../../core/errors.js";
import { positive } from "../../core/validate.js";
import type { Decision } from "../../limiter/decision.js";
import { type CompositeDecision, LimiterSet } from "../../limiter/limiter-set.js";
import { RateLimiter, type RateLimiterOptions } from "../../limiter/rate-limiter.js";
import { ipKey } from "../../net/ip-key.js";
import { MemoryStore } from "../../stores/memory-store.js";
import type { Store } from "../../stores/store.js";
import { TrustedProxies, resolveClientIp } from "./client-ip.js";
import { type LimitView, ceilSeconds, headerFormats, policyItem, quoteName, retryAfterSeconds, writeRateLimitHeaders } from "./headers.js";
import { type CompiledKey, compileKey, identityReader } from "./limit-keys.js";
import { Lockout } from "./lockout.js";
import { requestPath } from "./path.js";
import { PROBLEM_CONTENT_TYPE, type ProblemWriter, problemWriter } from "./problem.js";
import { type ProfileSettings, resolveProfile } from "./profiles.js";
import { type PathMatcher, compileMethods, compilePattern } from "./route-match.js";
import type {
  HttpHooks,
  HttpLimitedEvent,
  HttpLimiterOptions,
  HttpLogger,
  KeyContext,
  KeyFunction,
  LimitConfig,
  PartialLimitConfig,
  RequestInfo,
  RouteConfig,
  RouteLockoutConfig,
} from "./types.js";

interface CompiledLimit {
  readonly name: string;
  readonly quotedName: string;
  readonly limiter: RateLimiter<boolean>;
  readonly key: CompiledKey;
  readonly queued: boolean;
  readonly quota: number;
}

interface RouteLockout {
  readonly subject: KeyFunction;
  readonly failures: ReadonlySet<number>;
  readonly successResets: boolean;
}

interface CompiledRoute {
  readonly name: string;
  readonly matcher: PathMatcher;
  readonly methods: ReadonlySet<string> | undefined;
  /** Limits checked at once (all or nothing). */
  readonly sync: readonly CompiledLimit[];
  readonly set: LimiterSet<boolean> | undefined;
  /** The one limit with a queue, checked last. */
  readonly queued: CompiledLimit | undefined;
  /** Every limit, in header order. */
  readonly all: readonly CompiledLimit[];
  readonly policyHeader: string;
  readonly lockout: RouteLockout | undefined;
  readonly needsBody: boolean;
  /** The verdict for an allowed request when no headers are sent (shared, frozen). */
  readonly pass: Verdict;
}

/** What to do with a lockout-tracked request once its response status is known. */
export interface LockoutTrack {
  readonly subject: string;
  readonly failures: ReadonlySet<number>;
  readonly successResets: boolean;
}

/** The answer for one request. */
export interface Verdict {
  /** Let the request through. */
  readonly allowed: boolean;
  /** 429 when rejected. */
  readonly status: number;
  /** Headers to add to the response (rate-limit headers, and Retry-After / Content-Type when rejected). */
  readonly headers: Readonly<Record<string, string>>;
  /** The rejection body (a problem document), if any. */
  readonly body: string | undefined;
  /** The matched route, if any. */
  readonly route: string | undefined;
  /** Present when the response status should feed the subject lockout. */
  readonly lockout: LockoutTrack | undefined;
  /** The client left while queued: send nothing. */
  readonly aborted: boolean;
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});
const PASS: Verdict = Object.freeze({ allowed: true, status: 200, headers: NO_HEADERS, body: undefined, route: undefined, lockout: undefined, aborted: false });
const ABORTED: Verdict = Object.freeze({ allowed: false, status: 0, headers: NO_HEADERS, body: undefined, route: undefined, lockout: undefined, aborted: true });

/** Most distinct client addresses whose IP keys are remembered (a small cache in front of ipKey). */
const IP_CACHE_MAX = 4096;
const DEFAULT_FAILURE_STATUSES = [401];

export class HttpLimiter {
  readonly profile: ProfileSettings;
  readonly lockout: Lockout<boolean>;
  /** True when every decision is answered at once (a memory store). */
  readonly sync: boolean;
  readonly trustedProxies: TrustedProxies;
  readonly clock: Clock;
  /** Largest form body read for form-field keys. */
  readonly formBodyLimit: number;
  /** Whether any route may need a form body to find its keys (adapters then read or wait for it). */
  readonly needsBody: boolean;
  private readonly routes: CompiledRoute[];
  private readonly fmt: { ietf: boolean; legacy: boolean; x: boolean };
  private readonly headersOnAllowed: boolean;
  private readonly problem: ProblemWriter;
  private readonly log: HttpLogger | undefined;
  private readonly hooks: HttpHooks;
  private readonly requestIdHeaders: string[];
  private readonly clientIdForLog: KeyFunction;
  private readonly ipCache = new Map<string, string>();
  private readonly peerCache = new Map<string, string>();
  private readonly v4: number;
  private readonly v6: number;
  private readonly limiters: RateLimiter<boolean>[] = [];
  private readonly caseSensitive: boolean;
  private warnedUntrustedForwarding = false;
  /** "<scope>:" or "", before every limit name in the store. */
  private readonly scope: string;
  private queuedNow = 0;

  constructor(o: HttpLimiterOptions) {
    if (o === null || typeof o !== "object") throw new InvalidArgumentError("http", "options must be an object");
    if (!Array.isArray(o.routes)) throw new InvalidArgumentError("routes", "must be a list of routes");
    // The plain system clock: in a server every request is its own event-loop
    // task, so a per-task cached clock would pay for a microtask (an
    // AsyncResource in Node) on every request to save one clock read.
    this.clock = o.clock ?? systemClock;
    const prof = typeof o.profile === "object" ? o.profile : { name: o.profile ?? "default" };
    this.profile = resolveProfile(prof.name, prof);
    this.v4 = o.ipv4Prefix ?? 32;
    this.v6 = o.ipv6Prefix ?? 64;
    ipKey("127.0.0.1", { ipv4Prefix: this.v4, ipv6Prefix: this.v6 }); // validates both prefixes now, not on the first request
    this.trustedProxies = new TrustedProxies(o.trustedProxies ?? []);
    this.fmt = headerFormats(o.headers?.format);
    this.headersOnAllowed = o.headers?.onAllowed ?? true;
    this.problem = problemWriter(o.problem);
    this.log = o.logger;
    this.hooks = o.hooks ?? {};
    this.requestIdHeaders = (o.requestIdHeaders ?? ["x-request-id", "x-correlation-id"]).map((h) => h.toLowerCase());
    this.clientIdForLog = identityReader({ queryParam: "client_id", formField: "client_id", basicAuth: true }, "clientId");
    this.formBodyLimit = positive("formBodyLimit", o.formBodyLimit ?? 65_536);
    const store: Store = o.store ?? new MemoryStore({ maxKeys: o.maxKeys ?? 100_000 });
    this.sync = store.sync;
    // On a memory store the lockout keeps a table of its own; on a shared one it lives there, so a lock holds at every instance.
    this.scope = o.scope === undefined ? "" : `${o.scope}:`;
    this.lockout = new Lockout<boolean>(o.lockout ?? {}, this.profile, this.clock, store.sync ? undefined : store, `http-lockout${o.scope === undefined ? "" : `:${o.scope}`}`);
    // Express routes ignore case by default: a case-sensitive match would let "/TOKEN" past a "/token" rule.
    this.caseSensitive = o.caseSensitive ?? false;
    const names = new Set<string>();
    this.routes = o.routes.map((r, i) => this.compileRoute(r, i, store, names));
    this.needsBody = this.routes.some((r) => r.needsBody);
  }


  /** Requests waiting in queues now. */
  get queued(): number {
    return this.queuedNow;
  }

  /** Whether the request would need its form body read before `decide` (a matching route keys on a form field). */
  wantsBody(method: string, url: string): boolean {
    const r = this.match(method, this.matchPath(url));
    return r !== undefined && r.needsBody;
  }

  /**
   * Decides one request. Synchronous unless the request has to queue. A
   * request about to queue calls `onQueue` for a signal that the adapter
   * aborts when the client disconnects, which takes it out of the queue
   * (asked for lazily, so that requests that do not queue allocate nothing).
   */
  decide(req: RequestInfo, onQueue?: () => AbortSignal): Verdict | Promise<Verdict> {
    const path = this.matchPath(req.url);
    const route = this.match(req.method, path);
    if (route === undefined) return PASS;
    const ctx: KeyContext = { req, path, clientIp: this.clientIp(req), route: route.name };
    if (!this.sync) return this.decideShared(route, ctx, onQueue);

    let track: LockoutTrack | undefined;
    if (route.lockout !== undefined) {
      const subject = route.lockout.subject(ctx);
      if (subject !== undefined) {
        const refused = this.lockoutChecked(ctx, subject, this.lockout.check(subject) as Decision);
        if (refused !== undefined) return refused;
        track = { subject, failures: route.lockout.failures, successResets: route.lockout.successResets };
      }
    }

    const decisions = this.limitsChecked(route, ctx, this.checkLimits(route, ctx) as Decision | CompositeDecision | undefined, track);
    if (!Array.isArray(decisions)) return decisions;

    const q = route.queued;
    if (q === undefined) return this.allow(route, decisions, track);
    const qKey = this.keyOf(q, ctx);
    return this.queueStep(route, ctx, q, qKey, q.limiter.check(qKey) as Decision, decisions, track, onQueue);
  }

  /**
   * Reports a failed authentication of `subject` (from any IP). On a shared
   * store the record is written in the background (the store's failure mode
   * answers while it is unavailable); the returned promise says when.
   */
  recordFailure(subject: string): void | Promise<void> {
    const r = this.lockout.recordFailure(subject);
    if (r instanceof Promise) return r.then((x) => this.lockedOutNow(subject, x), () => {});
    this.lockedOutNow(subject, r);
  }

  /** Reports a successful authentication of `subject`: its failures and escalation are cleared. */
  recordSuccess(subject: string): void | Promise<void> {
    const r = this.lockout.recordSuccess(subject);
    if (r instanceof Promise) return r.catch(() => {});
  }

  /** Feeds the lockout from a response status (called by adapters when a tracked response finishes). */
  observeStatus(track: LockoutTrack, status: number): void {
    if (track.failures.has(status)) void this.recordFailure(track.subject);
    else if (track.successResets && status >= 200 && status < 300) void this.recordSuccess(track.subject);
  }

  /** The client address of a request under the trusted-proxy rules; warns once if the setting looks wrong. */
  clientIp(req: Pick<RequestInfo, "remoteAddress" | "headers" | "rawHeaders">): string {
    const peer = req.remoteAddress;
    const raw = req.rawHeaders;
    const forwarded = raw !== undefined ? hasForwarding(raw) : req.headers["x-forwarded-for"] !== undefined || req.headers.forwarded !== undefined;
    if (!forwarded && peer !== undefined) {
      // The common case: no forwarding headers, so the client is the peer. Its
      // normal form is remembered (parsing an address costs more than the limit check).
      let ip = this.peerCache.get(peer);
      if (ip === undefined) {
        ip = resolveClientIp(peer, {}, this.trustedProxies).ip;
        if (this.peerCache.size >= IP_CACHE_MAX) this.peerCache.clear();
        this.peerCache.set(peer, ip);
      }
      return ip;
    }
    const r = resolveClientIp(peer, req.headers, this.trustedProxies);
    if (r.ignoredForwarding && !this.warnedUntrustedForwarding) {
      this.warnedUntrustedForwarding = true;
      this.log?.warn("forwarding headers from an untrusted peer were ignored; if this server is behind a proxy, add it to trusted proxies", {
        remote_ip: r.ip,
        trusted_proxies: this.trustedProxies.size,
      });
    }
    return r.ip;
  }

  /** Fails every queued request and stops the queues' timers. */
  dispose(): void {
    for (const l of this.limiters) l.dispose();
  }

  /** The lock that a failure may have started: logged and reported. */
  private lockedOutNow(subject: string, r: { locked: boolean; lockedUntil: number; failures: number }): void {
    if (!r.locked) return;
    // On a shared store the lock's end is store time (wall clock); on memory, the limiter's clock.
    const now = this.sync ? this.clock.now() : this.clock.wallNow();
    this.log?.warn("subject locked out", { subject, failures: r.failures, locked_for_ms: Math.max(0, r.lockedUntil - now) });
    this.hooks.onLockout?.(subject, r.lockedUntil);
  }

  /**
   * `decide` on a shared store: the same steps as on memory, each check one
   * store call (a route's limits together in one), so every instance on the
   * store counts the same windows and locks.
   */
  private async decideShared(route: CompiledRoute, ctx: KeyContext, onQueue: (() => AbortSignal) | undefined): Promise<Verdict> {
    let track: LockoutTrack | undefined;
    if (route.lockout !== undefined) {
      const subject = route.lockout.subject(ctx);
      if (subject !== undefined) {
        const refused = this.lockoutChecked(ctx, subject, await this.lockout.check(subject));
        if (refused !== undefined) return refused;
        track = { subject, failures: route.lockout.failures, successResets: route.lockout.successResets };
      }
    }
    const decisions = this.limitsChecked(route, ctx, await this.checkLimits(route, ctx), track);
    if (!Array.isArray(decisions)) return decisions;
    const q = route.queued;
    if (q === undefined) return this.allow(route, decisions, track);
    const qKey = this.keyOf(q, ctx);
    return this.queueStep(route, ctx, q, qKey, await q.limiter.check(qKey), decisions, track, onQueue);
  }

  /** After the lockout check of `subject`: the refusal when it is locked out (a shadowed lock is only logged). */
  private lockoutChecked(ctx: KeyContext, subject: string, d: Decision): Verdict | undefined {
    if (d.shadowed) this.event("info", "subject would be locked out (shadow)", ctx, "lockout", d, subject);
    return d.allowed ? undefined : this.lockedOut(ctx, subject, d);
  }

  /** Checks a route's limits that are not queued: its one limit alone, or all of them together. */
  private checkLimits(route: CompiledRoute, ctx: KeyContext): Decision | CompositeDecision | undefined | Promise<Decision | CompositeDecision> {
    if (route.sync.length === 1) {
      const l = route.sync[0]!;
      return l.limiter.check(this.keyOf(l, ctx));
    }
    return route.set?.check(route.sync.map((l) => this.keyOf(l, ctx)));
  }

  /**
   * After `checkLimits`: the refusal, or the answer when the route has no
   * queue and one limit (the common case answers without building the
   * general lists), else the decisions to go on to the queue with. Shadowed
   * decisions are logged.
   */
  private limitsChecked(route: CompiledRoute, ctx: KeyContext, c: Decision | CompositeDecision | undefined, track: LockoutTrack | undefined): Verdict | Decision[] {
    if (c === undefined) return [];
    if (route.sync.length === 1) {
      const l = route.sync[0]!;
      const d = c as Decision;
      if (!d.allowed) return this.reject(route, ctx, [d], 0);
      if (d.shadowed) this.shadowEvent(route, ctx, l, d);
      return route.queued === undefined ? this.allowOne(route, l, d, track) : [d];
    }
    const decisions = (c as CompositeDecision).decisions as Decision[];
    if (!c.allowed) return this.reject(route, ctx, decisions, decisions.length - 1);
    for (let i = 0; i < decisions.length; i++) if (decisions[i]!.shadowed) this.shadowEvent(route, ctx, route.sync[i]!, decisions[i]!);
    return decisions;
  }

  /** After the queued limit's check: pass, refuse (not a rate refusal, or a full queue) or wait in the queue. */
  private queueStep(
    route: CompiledRoute,
    ctx: KeyContext,
    q: CompiledLimit,
    qKey: string,
    d: Decision,
    decisions: Decision[],
    track: LockoutTrack | undefined,
    onQueue: (() => AbortSignal) | undefined,
  ): Verdict | Promise<Verdict> {
    if (d.allowed) {
      if (d.shadowed) this.shadowEvent(route, ctx, q, d);
      decisions.push(d);
      return this.allow(route, decisions, track);
    }
    if (d.reason !== "rate_limited") {
      decisions.push(d);
      return this.reject(route, ctx, decisions, decisions.length - 1);
    }
    return this.wait(route, ctx, q, qKey, decisions, track, onQueue?.());
  }

  /** The path routes are matched against: normalised, and lower-cased unless matching is case-sensitive. */
  private matchPath(url: string): string {
    const p = requestPath(url) ?? url;
    return this.caseSensitive ? p : p.toLowerCase();
  }

  private match(method: string, path: string): CompiledRoute | undefined {
    for (const r of this.routes) {
      if (r.methods !== undefined && !r.methods.has(method)) continue;
      if (r.matcher.test(path)) return r;
    }
    return undefined;
  }

  private keyOf(l: CompiledLimit, ctx: KeyContext): string {
    // A request without the identity a limit counts by is counted by its
    // address instead: leaving out a header must not be a way around the limit.
    return l.key.get(ctx) ?? this.ipKeyOf(ctx.clientIp, undefined, undefined);
  }

  private ipKeyOf(ip: string, v4: number | undefined, v6: number | undefined): string {
    if (v4 !== undefined || v6 !== undefined) {
      if (ip === "unknown") return "ip:unknown";
      return `ip:${ipKey(ip, { ipv4Prefix: v4 ?? this.v4, ipv6Prefix: v6 ?? this.v6 })}`;
    }
    let k = this.ipCache.get(ip);
    if (k === undefined) {
      k = ip === "unknown" ? "ip:unknown" : `ip:${ipKey(ip, { ipv4Prefix: this.v4, ipv6Prefix: this.v6 })}`;
      if (this.ipCache.size >= IP_CACHE_MAX) this.ipCache.clear();
      this.ipCache.set(ip, k);
    }
    return k;
  }

  private async wait(
    route: CompiledRoute,
    ctx: KeyContext,
    q: CompiledLimit,
    key: string,
    decisions: Decision[],
    track: LockoutTrack | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Verdict> {
    // Only a request that takes a place in the queue is "queued": one the
    // full queue refuses at once is a 429 like any other, and counted as one.
    let queued = false;
    const onQueued = (): void => {
      queued = true;
      this.queuedNow++;
      this.hooks.onQueued?.(route.name, q.name);
      this.event("info", "request queued", ctx, q.name, undefined, undefined);
    };
    let d: Decision;
    try {
      d = await q.limiter.acquire(key, 1, signal ? { signal, onQueued } : { onQueued });
    } catch (e) {
      if (e instanceof AcquireAbortedError) {
        if (queued) this.event("info", "queued request left the queue", ctx, q.name, undefined, undefined);
        return ABORTED;
      }
      throw e;
    } finally {
      if (queued) this.queuedNow--;
    }
    decisions.push(d);
    if (!d.allowed) return this.reject(route, ctx, decisions, decisions.length - 1);
    return this.allow(route, decisions, track);
  }

  private allowOne(route: CompiledRoute, l: CompiledLimit, d: Decision, track: LockoutTrack | undefined): Verdict {
    if (!this.headersOnAllowed) return track === undefined ? route.pass : { ...route.pass, lockout: track };
    if (this.fmt.legacy || this.fmt.x) return this.allow(route, [d], track);
    const headers: Record<string, string> = {
      "ratelimit-policy": route.policyHeader,
      ratelimit: `${l.quotedName};r=${d.remaining > 0 ? Math.floor(d.remaining) : 0};t=${ceilSeconds(d.resetMs)}`,
    };
    return { allowed: true, status: 200, headers, body: undefined, route: route.name, lockout: track, aborted: false };
  }

  private allow(route: CompiledRoute, decisions: readonly Decision[], track: LockoutTrack | undefined): Verdict {
    if (!this.headersOnAllowed || decisions.length === 0) {
      return track === undefined ? route.pass : { ...route.pass, lockout: track };
    }
    const headers: Record<string, string> = {};
    writeRateLimitHeaders(headers, this.views(route, decisions, -1), route.policyHeader, this.fmt, -1, this.clock.wallNow());
    return { allowed: true, status: 200, headers, body: undefined, route: route.name, lockout: track, aborted: false };
  }

  private reject(route: CompiledRoute, ctx: KeyContext, decisions: readonly Decision[], at: number): Verdict {
    const d = decisions[at]!;
    const limit = this.limitAt(route, at);
    const views = this.views(route, decisions, at);
    const retry = retryAfterSeconds(d.retryAfterMs, [views[at]!]);
    const headers: Record<string, string> = {};
    writeRateLimitHeaders(headers, views, this.policyHeaderFor(route, decisions.length), this.fmt, at, this.clock.wallNow());
    headers["retry-after"] = String(retry);
    const body = this.problem([limit.name], retry);
    if (body !== undefined) headers["content-type"] = PROBLEM_CONTENT_TYPE;
    this.hooks.rejections?.inc({ route: route.name, limiter: limit.name });
    this.hooks.onReject?.(route.name, limit.name);
    this.refused("request throttled", ctx, limit.name, limit.key.kind, d, undefined, retry);
    return { allowed: false, status: 429, headers, body, route: route.name, lockout: undefined, aborted: false };
  }

  private lockedOut(ctx: KeyContext, subject: string, d: Decision): Verdict {
    const retry = Math.max(1, ceilSeconds(d.retryAfterMs));
    const headers: Record<string, string> = { "retry-after": String(retry) };
    const body = this.problem(["lockout"], retry, "Too many failed attempts for this account; retry later.");
    if (body !== undefined) headers["content-type"] = PROBLEM_CONTENT_TYPE;
    this.hooks.rejections?.inc({ route: ctx.route, limiter: "lockout" });
    this.hooks.onReject?.(ctx.route, "lockout");
    this.refused("request refused: subject locked out", ctx, "lockout", "subject", d, subject, retry);
    return { allowed: false, status: 429, headers, body, route: ctx.route, lockout: undefined, aborted: false };
  }

  private shadowEvent(route: CompiledRoute, ctx: KeyContext, l: CompiledLimit, d: Decision): void {
    this.hooks.onShadowReject?.(route.name, l.name);
    this.event("info", "request would be throttled (shadow)", ctx, l.name, d, undefined);
  }

  /** Logs a 429 once: as the logger's own `limited` event when it has one, else as a warning with the same tags. */
  private refused(msg: string, ctx: KeyContext, limiter: string, key: string, d: Decision, subject: string | undefined, retry: number): void {
    const log = this.log;
    if (log === undefined) return;
    if (log.limited === undefined) {
      this.event("warn", msg, ctx, limiter, d, subject, retry);
      return;
    }
    const e: HttpLimitedEvent = {
      endpoint: ctx.route,
      limiter,
      key,
      // A lockout's engine reason is the ban box's; operators read it as what it is.
      reason: limiter === "lockout" && subject !== undefined ? "locked_out" : (d.reason ?? "rate_limited"),
      remote_ip: ctx.clientIp,
      method: ctx.req.method,
      path: ctx.path,
      retry_after: retry,
      client_id: this.clientIdForLog(ctx)?.slice(0, 128),
      request_id: this.requestIdOf(ctx),
    };
    if (subject !== undefined) e.subject = subject;
    log.limited(e);
  }

  private requestIdOf(ctx: KeyContext): string | undefined {
    for (const h of this.requestIdHeaders) {
      const v = ctx.req.headers[h];
      if (typeof v === "string" && v.length > 0) return v.slice(0, 128);
    }
    return undefined;
  }

  /** Logs a throttle event with the tags operators correlate on. */
  private event(level: "warn" | "info", msg: string, ctx: KeyContext, limiter: string, d: Decision | undefined, subject: string | undefined, retry?: number): void {
    if (this.log === undefined) return;
    const fields: Record<string, unknown> = {
      endpoint: ctx.route,
      path: ctx.path,
      method: ctx.req.method,
      client_id: this.clientIdForLog(ctx)?.slice(0, 128) ?? null,
      remote_ip: ctx.clientIp,
      limiter,
    };
    const requestId = this.requestIdOf(ctx);
    if (requestId !== undefined) fields.request_id = requestId;
    if (subject !== undefined) fields.subject = subject;
    if (d?.reason !== undefined) fields.reason = d.reason;
    if (retry !== undefined) fields.retry_after = retry;
    if (level === "warn") this.log.warn(msg, fields);
    else this.log.info(msg, fields);
  }

  private limitAt(route: CompiledRoute, i: number): CompiledLimit {
    return i < route.sync.length ? route.sync[i]! : route.queued!;
  }

  private policyHeaderFor(route: CompiledRoute, n: number): string {
    if (n === route.all.length) return route.policyHeader;
    return route.all
      .slice(0, n)
      .map((l) => policyItem(l.quotedName, l.quota, windowSeconds(l.limiter)))
      .join(", ");
  }

  private views(route: CompiledRoute, decisions: readonly Decision[], rejectedAt: number): LimitView[] {
    const out: LimitView[] = [];
    for (let i = 0; i < decisions.length; i++) {
      const d = decisions[i]!;
      const l = this.limitAt(route, i);
      // For the limit that rejected, t is when a request fits again, so that
      // t and Retry-After tell the client the same thing.
      const resetSec = i === rejectedAt ? Math.max(1, ceilSeconds(d.retryAfterMs)) : ceilSeconds(d.resetMs);
      out.push({ quotedName: l.quotedName, quota: l.quota, remaining: i === rejectedAt ? 0 : Math.max(0, Math.floor(d.remaining)), resetSec });
    }
    return out;
  }

  private compileRoute(r: RouteConfig, i: number, store: Store, names: Set<string>): CompiledRoute {
    const param = `routes[${i}]`;
    if (r === null || typeof r !== "object") throw new InvalidArgumentError(param, "must be an object");
    const matcher = compilePattern(this.caseSensitive ? r.match : r.match.toLowerCase(), `${param}.match`);
    const name = r.name ?? r.match;
    quoteName(name, `${param}.name`);
    const methods = compileMethods(r.methods, `${param}.methods`);
    if (r.limit !== undefined && r.limits !== undefined) throw new InvalidArgumentError(param, "give either limit or limits, not both");
    const configs = r.limits ?? [r.limit ?? {}];
    if (configs.length === 0) throw new InvalidArgumentError(`${param}.limits`, "must not be empty");
    const limits = configs.map((c, j) => {
      const lname = c.name ?? (configs.length === 1 ? name : `${name}#${j + 1}`);
      if (names.has(lname)) throw new InvalidArgumentError(`${param}.limits[${j}].name`, `policy name ${JSON.stringify(lname)} is used twice`);
      names.add(lname);
      return this.compileLimit(c, lname, `${param}.limits[${j}]`, store);
    });
    const queued = limits.filter((l) => l.queued);
    if (queued.length > 1) throw new InvalidArgumentError(`${param}.limits`, "at most one limit of a route may have a queue");
    const sync = limits.filter((l) => !l.queued);
    const all = [...sync, ...queued];
    return {
      name,
      matcher,
      methods,
      sync,
      set: sync.length > 1 ? new LimiterSet<boolean>(sync.map((l) => l.limiter)) : undefined,
      queued: queued[0],
      all,
      policyHeader: all.map((l) => policyItem(l.quotedName, l.quota, windowSeconds(l.limiter))).join(", "),
      lockout: this.compileLockout(r.lockout, `${param}.lockout`),
      pass: Object.freeze({ ...PASS, route: name }),
      needsBody: limits.some((l) => l.key.needsBody) || (r.lockout !== undefined && r.lockout !== false && lockoutNeedsBody(r.lockout)),
    };
  }

  private compileLimit(c: LimitConfig | PartialLimitConfig, name: string, param: string, store: Store): CompiledLimit {
    if (c === null || typeof c !== "object") throw new InvalidArgumentError(param, "must be an object");
    const key = compileKey(c.key, { key: (ip, v4, v6) => this.ipKeyOf(ip, v4, v6) }, param);
    // A store with its own clock (Redis) is read by every instance alike: a local clock differs per process.
    const base = { name: `http:${this.scope}${name}`, store, shadow: c.shadow ?? false, ...(store.storeTime ? {} : { clock: this.clock }) };
    let limiter: RateLimiter<boolean>;
    try {
      limiter = new RateLimiter<boolean>(limiterOptions(c, this.profile, base));
    } catch (e) {
      if (e instanceof InvalidArgumentError) throw new InvalidArgumentError(`${param}.${e.param}`, e.message.slice(e.param.length + 2));
      throw e;
    }
    this.limiters.push(limiter);
    const queued = limiter.spec.kind === "fixed_window" && limiter.spec.queue !== undefined && !limiter.shadow;
    return { name, quotedName: quoteName(name, `${param}.name`), limiter, key, queued, quota: Math.floor(limiter.limit) };
  }

  private compileLockout(l: RouteConfig["lockout"], param: string): RouteLockout | undefined {
    if (l === undefined || l === false) return undefined;
    const o: RouteLockoutConfig = l === true ? {} : l;
    const failures = new Set(o.failureStatuses ?? DEFAULT_FAILURE_STATUSES);
    for (const s of failures) {
      if (!Number.isInteger(s) || s < 100 || s > 599) throw new InvalidArgumentError(`${param}.failureStatuses`, `not an HTTP status: ${String(s)}`);
    }
    return { subject: subjectReader(o.subject, param), failures, successResets: o.successResets ?? true };
  }
}

/** Whether a raw header list has X-Forwarded-For or Forwarded (names compared without case). */
function hasForwarding(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    if (n.length !== 15 && n.length !== 9) continue;
    const l = n.toLowerCase();
    if (l === "x-forwarded-for" || l === "forwarded") return true;
  }
  return false;
}

function lockoutNeedsBody(l: RouteLockoutConfig | true): boolean {
  if (l === true || l.subject === undefined || l.subject === "user" || l.subject === "client_id") return true;
  return typeof l.subject === "object" && l.subject.formField !== undefined;
}

function subjectReader(s: RouteLockoutConfig["subject"], param: string): KeyFunction {
  if (typeof s === "function") return s;
  if (s === undefined || s === "user") return identityReader({ formField: "username" }, `${param}.subject`);
  if (s === "client_id") return identityReader({ queryParam: "client_id", formField: "client_id", basicAuth: true }, `${param}.subject`);
  if (typeof s === "object") return identityReader(s, `${param}.subject`);
  throw new InvalidArgumentError(`${param}.subject`, `must be "user", "client_id", a source object or a function`);
}

/** Engine options for a route limit; a partial fixed window is completed from the profile. */
function limiterOptions(
  c: LimitConfig | PartialLimitConfig,
  p: ProfileSettings,
  base: { name: string; store: Store; clock?: Clock; shadow: boolean },
): RateLimiterOptions<boolean> {
  switch (c.algorithm) {
    case undefined:
    case "fixed_window":
      return {
        ...base,
        algorithm: "fixed_window",
        permitLimit: c.permitLimit ?? p.permitLimit,
        windowMs: c.windowMs ?? p.windowMs,
        queueLimit: c.queueLimit ?? (c.algorithm === undefined ? p.queueLimit : 0),
      };
    case "token_bucket":
    case "gcra":
      return { ...base, algorithm: c.algorithm, rate: c.rate, periodMs: c.periodMs, burst: c.burst };
    case "sliding_window":
      return { ...base, algorithm: "sliding_window", limit: c.limit, windowMs: c.windowMs };
    default:
      throw new InvalidArgumentError("algorithm", `must be one of fixed_window, token_bucket, gcra, sliding_window; got ${JSON.stringify((c as { algorithm: unknown }).algorithm)}`);
  }
}

/** The policy window in whole seconds: the window, or the time a token bucket takes to refill its burst. */
function windowSeconds(l: RateLimiter<boolean>): number {
  const s = l.spec;
  const ms = s.kind === "gcra" ? s.params.toleranceMs : s.params.windowMs;
  return Math.max(1, Math.ceil(ms / 1000));
}
