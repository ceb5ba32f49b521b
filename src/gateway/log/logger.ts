/**
 * The gateway's event log, on pino. Every event is one line at INFO with
 * `ts` (ISO 8601 wall time), `level` and `event`, then the event's fields in a
 * fixed order with client-controlled values (user names, reasons) last, so a
 * line-anchored pattern (fail2ban) reads the fields it needs before any text a
 * client chose. See docs/logging.md.
 */
import pino, { type DestinationStream } from "pino";
import { type Clock, systemClock } from "../../core/clock.js";
import { InvalidArgumentError } from "../../core/errors.js";
import type { LimitedLine } from "../../core/limited-line.js";
import type { RetryAfterFields } from "../../core/retry-after.js";
import { normalizeIp } from "../../net/ip-key.js";
import { ConnLines } from "./conn-lines.js";
import { LogfmtDestination } from "./logfmt.js";
import { scrubFields } from "./privacy.js";

export type LogFormat = "json" | "logfmt";

export interface GatewayLoggerOptions {
  format: LogFormat;
  /** pino level name: trace, debug, info (default), warn, error, fatal, silent. */
  level?: string;
  /** Emit `audit` events (destinations). Off by default. */
  auditDestinations?: boolean;
  /** Where lines go (default: stdout, written synchronously). */
  destination?: NodeJS.WritableStream;
  /** Clock for `ts` (default: the system clock). */
  clock?: Clock;
}

export interface ConnOpenEvent {
  remote_addr: string;
  transport: string;
  listener: string;
}

/** How long a refused client must wait, and whether that is long enough to flag (src/core/retry-after.ts). */
export type RetryAfter = RetryAfterFields;

export interface AuthEvent extends RetryAfter {
  remote_addr: string;
  user?: string;
  key_fingerprint?: string;
  result: "accept" | "reject";
  reason?: string;
  listener: string;
}

export interface ConnCloseEvent {
  remote_addr: string;
  duration_ms: number;
  listener: string;
}

export type LimitedEvent = LimitedLine;

/** A request the gateway refused after admission: a destination the policy refuses, an upstream that cannot be reached. */
export interface DenyEvent {
  remote_addr: string;
  listener: string;
  /** One word: policy, dns, private_address, invalid_destination, policy_unavailable, no_route, error. */
  reason: string;
  /** The policy's sentence or the socket error code; never the destination. */
  detail?: string;
  user?: string;
  /** Written only when destination auditing is on. */
  destination?: string;
}

export interface BanEvent {
  remote_addr: string;
  /** End of the ban: wall-clock epoch milliseconds, a Date, or an ISO string. */
  until: number | Date | string;
  failures: number;
}

export interface UnbanEvent {
  remote_addr: string;
  reason: string;
}

export interface AuditEvent {
  remote_addr: string;
  user?: string;
  destination: string;
  listener: string;
}

/** The end of a stop: connections that finished during the drain, and those cut at its end. */
export interface StoppedEvent {
  signal: string;
  drained: number;
  cut: number;
}

export interface GatewayLogger {
  connOpen(e: ConnOpenEvent): void;
  auth(e: AuthEvent): void;
  connClose(e: ConnCloseEvent): void;
  limited(e: LimitedEvent): void;
  /** A refused request (destination policy, unreachable upstream); its destination only with auditing on. */
  deny(e: DenyEvent): void;
  ban(e: BanEvent): void;
  unban(e: UnbanEvent): void;
  /** A destination record; does nothing unless auditDestinations is on. */
  audit(e: AuditEvent): void;
  stopped(e: StoppedEvent): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const LEVELS = new Set(["trace", "debug", "info", "warn", "error", "fatal", "silent"]);
// Keys an event owns; free-form fields may not set them (a message must not pass for an auth event).
const RESERVED = new Set(["ts", "level", "event", "msg", "time"]);

/** The address as fail2ban and people want it: canonical (::ffff:1.2.3.4 is 1.2.3.4); left as is if not an address. */
function addr(a: string): string {
  try {
    return normalizeIp(a);
  } catch {
    return String(a);
  }
}

function isoTime(t: number | Date | string): string {
  const d = t instanceof Date ? t : typeof t === "number" ? new Date(t) : new Date(Date.parse(t));
  return Number.isFinite(d.getTime()) ? d.toISOString() : String(t);
}

function freeFields(fields: Record<string, unknown> | undefined): Record<string, unknown> {
  const out = scrubFields(fields);
  for (const k of RESERVED) delete out[k];
  return out;
}

/** Where pino writes (`pino`), and where finished lines go (`lines`: the same stream, or the logfmt destination's target). */
function destinationStreams(o: GatewayLoggerOptions): { pino: DestinationStream; lines: { write(s: string): unknown } } {
  const target = o.destination ?? pino.destination({ dest: 1, sync: true });
  if (o.format === "logfmt") return { pino: new LogfmtDestination(target as NodeJS.WritableStream), lines: target };
  return { pino: target as DestinationStream, lines: target as DestinationStream };
}

export function createGatewayLogger(opts: GatewayLoggerOptions): GatewayLogger {
  if (opts.format !== "json" && opts.format !== "logfmt") {
    throw new InvalidArgumentError("log.format", `must be "json" or "logfmt", got ${JSON.stringify(opts.format)}`);
  }
  const level = opts.level ?? "info";
  if (!LEVELS.has(level)) throw new InvalidArgumentError("log.level", `unknown level ${JSON.stringify(level)}`);
  const clock = opts.clock ?? systemClock;
  const audit = opts.auditDestinations === true;
  // Lines within one millisecond share one formatted timestamp (a busy gateway writes several per ms).
  let tsMs = NaN;
  let tsText = "";
  const timestamp = (): string => {
    const ms = Math.floor(clock.wallNow());
    if (ms !== tsMs) {
      tsMs = ms;
      tsText = `,"ts":"${new Date(ms).toISOString()}"`;
    }
    return tsText;
  };
  const streams = destinationStreams(opts);
  const log = pino(
    {
      level,
      base: null,
      timestamp,
      formatters: { level: (label) => ({ level: label }) },
    },
    streams.pino,
  );
  // The per-connection lines skip pino (same bytes, see conn-lines.ts); the level is fixed for this logger's life.
  const connLines = log.isLevelEnabled("info") ? new ConnLines(opts.format, () => clock.wallNow()) : undefined;
  const out = streams.lines;

  return {
    connOpen(e) {
      if (connLines !== undefined) out.write(connLines.open(addr(e.remote_addr), e.listener, e.transport));
    },
    auth(e) {
      log.info({
        event: "auth",
        result: e.result,
        remote_addr: addr(e.remote_addr),
        listener: e.listener,
        key_fingerprint: e.key_fingerprint,
        reason: e.reason,
        retry_after_s: e.retry_after_s,
        long_retry_after: e.long_retry_after,
        user: e.user,
      });
    },
    connClose(e) {
      if (connLines === undefined) return;
      const duration = Math.round(e.duration_ms);
      // Anything but a finite number is left to pino, which writes it as JSON would.
      if (Number.isFinite(duration)) out.write(connLines.close(addr(e.remote_addr), e.listener, duration));
      else log.info({ event: "conn_close", remote_addr: addr(e.remote_addr), listener: e.listener, duration_ms: duration });
    },
    limited(e) {
      log.info({
        event: "limited",
        remote_addr: addr(e.remote_addr),
        listener: e.listener,
        route: e.route,
        limiter: e.limiter,
        key: e.key,
        reason: e.reason,
        retry_after_s: e.retry_after_s,
        long_retry_after: e.long_retry_after,
        method: e.method,
        client_id: e.client_id,
        request_id: e.request_id,
        user: e.user,
      });
    },
    deny(e) {
      log.info({
        event: "deny",
        remote_addr: addr(e.remote_addr),
        listener: e.listener,
        reason: e.reason,
        detail: e.detail,
        destination: audit ? e.destination : undefined,
        user: e.user,
      });
    },
    ban(e) {
      log.info({ event: "ban", remote_addr: addr(e.remote_addr), until: isoTime(e.until), failures: e.failures });
    },
    unban(e) {
      log.info({ event: "unban", remote_addr: addr(e.remote_addr), reason: e.reason });
    },
    audit(e) {
      if (!audit) return;
      log.info({ event: "audit", remote_addr: addr(e.remote_addr), listener: e.listener, user: e.user, destination: e.destination });
    },
    stopped(e) {
      log.info({ event: "stopped", signal: e.signal, drained: e.drained, cut: e.cut });
    },
    info(msg, fields) {
      log.info(freeFields(fields), msg);
    },
    warn(msg, fields) {
      log.warn(freeFields(fields), msg);
    },
    error(msg, fields) {
      log.error(freeFields(fields), msg);
    },
  };
}
