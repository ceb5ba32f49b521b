/**
 * The admin API's routes: a fixed table of method + path template, each
 * marked whether it needs the bearer token. Health probes and the
 * dashboard's static files are open (they reveal nothing); everything that
 * shows or changes state is not.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { parseDuration } from "../config/duration.js";
import type { Clock } from "../core/clock.js";
import type { Gateway } from "../gateway/gateway.js";
import type { GatewayMetrics } from "../metrics/gateway-metrics.js";
import { readJsonBody } from "./body.js";
import { AdminError, sendJson } from "./errors.js";
import { addressKey, peekLimit, type PeekableGateway } from "./limits.js";
import { openApiDocument } from "./openapi.js";
import type { Readiness } from "./readiness.js";
import { buildStats } from "./stats.js";

export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<string, string>;
}

export interface Route {
  method: "GET" | "POST" | "DELETE";
  template: string;
  auth: boolean;
  handle(c: RouteContext): Promise<void> | void;
}

export interface RouteDeps {
  gateway: Gateway;
  metrics: GatewayMetrics;
  readiness: Readiness;
  clock: Clock;
  /** Reloads the configuration from its source; without it POST /v1/reload answers 501. */
  reload?: () => Promise<{ ok: boolean; problems: string[] }>;
}

/** Longest ban the API sets by hand (a year): past that, an operator wants the deny list. */
const MAX_BAN_MS = 365 * 86_400_000;
const MAX_PAGE = 500;
const MAX_REASON = 200;

export function routes(d: RouteDeps): Route[] {
  const { gateway, metrics, readiness, clock } = d;
  const peekable = gateway as Gateway & PeekableGateway;
  const wall = (boxUntil: number): number => clock.wallNow() + (boxUntil - gateway.penaltyBox.now());

  return [
    {
      method: "GET",
      template: "/healthz",
      auth: false,
      handle: ({ res }) => sendJson(res, 200, { status: "ok" }),
    },
    {
      method: "GET",
      template: "/readyz",
      auth: false,
      handle: async ({ res }) => {
        const r = await readiness.run();
        sendJson(res, r.ready ? 200 : 503, { status: r.ready ? "ready" : "not_ready", checks: r.checks });
      },
    },
    {
      method: "GET",
      template: "/metrics",
      auth: true,
      handle: async ({ res }) => {
        const text = await metrics.expose();
        res.writeHead(200, { "content-type": metrics.contentType, "cache-control": "no-store" });
        res.end(text);
      },
    },
    {
      method: "GET",
      template: "/v1/openapi.json",
      auth: false,
      handle: ({ res }) => sendJson(res, 200, openApiDocument()),
    },
    {
      method: "GET",
      template: "/v1/bans",
      auth: true,
      handle: async ({ res, url }) => {
        const limit = pageSize(url.searchParams.get("limit"));
        const after = cursorKey(url.searchParams.get("cursor"));
        // On a shared store: the bans of the whole fleet.
        const rows = await gateway.penaltyBox.banned();
        const now = gateway.penaltyBox.now();
        const all = [...rows].filter((b) => after === undefined || b.key > after).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
        const page = all.slice(0, limit);
        const last = page.at(-1);
        sendJson(res, 200, {
          bans: page.map((b) => ({ key: b.key, until: new Date(wall(b.bannedUntil)).toISOString(), remaining_ms: Math.max(0, Math.ceil(b.bannedUntil - now)), bans: b.bans, reason: metrics.banReasonOf(b.key) ?? null })),
          next_cursor: all.length > limit && last !== undefined ? Buffer.from(last.key).toString("base64url") : null,
        });
      },
    },
    {
      method: "POST",
      template: "/v1/bans",
      auth: true,
      handle: async ({ req, res }) => {
        const body = await readJsonBody(req);
        if (typeof body.ip !== "string") throw new AdminError("invalid_address", "`ip` must be an IP address or address key");
        const key = addressKey(peekable, body.ip);
        const durationMs = banDuration(body.duration);
        const reason = body.reason === undefined ? "manual" : body.reason;
        if (typeof reason !== "string" || reason.length === 0 || reason.length > MAX_REASON) throw new AdminError("bad_request", `\`reason\` must be a string of 1 to ${MAX_REASON} characters`);
        const until = await metrics.withBanReason("manual", () => gateway.ban(key, durationMs, "manual"));
        gateway.logger.info("admin ban", { remote_addr: key, reason, duration_ms: durationMs });
        const st = await gateway.penaltyBox.status(key);
        sendJson(res, 201, { key, until: new Date(until).toISOString(), remaining_ms: Math.max(0, Math.ceil(st.bannedUntil - gateway.penaltyBox.now())), reason });
      },
    },
    {
      method: "DELETE",
      template: "/v1/bans/{ip}",
      auth: true,
      handle: async ({ res, params }) => {
        const key = addressKey(peekable, params.ip!);
        const box = gateway.penaltyBox;
        if (!((await box.status(key)).bannedUntil > box.now())) throw new AdminError("not_banned", `${key} is not banned`);
        await gateway.unban(key, "api");
        sendJson(res, 200, { key, unbanned: true });
      },
    },
    {
      method: "GET",
      template: "/v1/limits/{limiter}/{key}",
      auth: true,
      handle: async ({ res, params }) => sendJson(res, 200, await peekLimit(peekable, params.limiter!, params.key!)),
    },
    {
      method: "POST",
      template: "/v1/reload",
      auth: true,
      handle: async ({ res }) => {
        if (d.reload === undefined) throw new AdminError("reload_unavailable", "this gateway was not started from a configuration file");
        const r = await d.reload();
        if (!r.ok) throw new AdminError("reload_failed", "the new configuration was refused; the running one stays", { problems: r.problems.slice(0, 50) });
        sendJson(res, 200, { ok: true });
      },
    },
    {
      method: "GET",
      template: "/v1/stats",
      auth: true,
      handle: async ({ res }) => sendJson(res, 200, await buildStats({ gateway, metrics, clock })),
    },
  ];
}

function pageSize(v: string | null): number {
  if (v === null) return 100;
  const n = /^\d{1,4}$/.test(v) ? Number(v) : NaN;
  if (!(n >= 1 && n <= MAX_PAGE)) throw new AdminError("bad_request", `\`limit\` must be an integer from 1 to ${MAX_PAGE}`);
  return n;
}

function cursorKey(v: string | null): string | undefined {
  if (v === null) return undefined;
  const key = /^[A-Za-z0-9_-]{1,120}$/.test(v) ? Buffer.from(v, "base64url").toString("utf8") : "";
  if (key.length === 0) throw new AdminError("invalid_cursor", "`cursor` must be a next_cursor from an earlier page");
  return key;
}

/** A duration string ("10m", "PT1H") or a number of seconds; absent means the penalty box's escalating length. */
function banDuration(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const ms = typeof v === "number" ? v * 1000 : typeof v === "string" ? parseDuration(v) : undefined;
  if (ms === undefined || !Number.isFinite(ms) || ms <= 0 || ms > MAX_BAN_MS) {
    throw new AdminError("invalid_duration", '`duration` must be a duration such as "10m" or a number of seconds, at most one year');
  }
  return ms;
}
