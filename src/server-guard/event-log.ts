/**
 * The events a protected server writes, one line each, with stable field
 * names that fail2ban and people can rely on:
 *
 *   connection opened   remote_addr transport
 *   auth attempt        result=accept|reject remote_addr user key_fingerprint method reason
 *   connection closed   remote_addr duration (seconds)
 *   connection refused  remote_addr limiter reason
 *   ban                 remote_addr until failures
 *
 * In logfmt or JSON the line starts with the time, the level, the message,
 * then (for auth attempts) `result` and `remote_addr`, and only then what a
 * client chose (user names, reasons), so the shipped fail2ban filter reads
 * the address before any client text (deploy/fail2ban/filter.d/portcullis.conf).
 * Or hand the events to a pino logger of the application's own.
 *
 * Privacy: no event carries a destination, a DNS answer or a byte count,
 * whatever fields a caller adds (the gateway's privacy rule, scrubFields).
 */
import { type Clock, systemClock } from "../core/clock.js";
import { InvalidArgumentError } from "../core/errors.js";
import { normalizeIp } from "../net/ip-key.js";
import { formatLogfmt } from "../gateway/log/logfmt.js";
import { scrubFields } from "../gateway/log/privacy.js";

/** The subset of a pino logger the events use. */
export interface PinoLike {
  info(obj: object, msg?: string): void;
}

export interface ServerEventLogOptions {
  /** "logfmt" (default) or "json" lines written to `destination`; or `pino`: events go to that logger. */
  format?: "logfmt" | "json";
  /** Where lines go (default: standard output). */
  destination?: { write(line: string): unknown };
  /** An application's pino logger: each event becomes `logger.info(fields, message)`. */
  pino?: PinoLike;
  /** Clock for `ts` (default: the system clock). */
  clock?: Clock;
}

export interface AuthAttemptEvent {
  remote_addr: string;
  result: "accept" | "reject";
  user?: string;
  /** SHA256:... as `ssh-keygen -lf` prints it, when the credential is a key. */
  key_fingerprint?: string;
  /** publickey, password, token... */
  method?: string;
  /** Why a reject: bad_credentials, backoff, banned, locked. */
  reason?: string;
}

export interface ServerEventLog {
  connectionOpened(e: { remote_addr: string; transport: string }): void;
  authAttempt(e: AuthAttemptEvent): void;
  /** `duration_ms` is written as `duration`, in seconds. */
  connectionClosed(e: { remote_addr: string; duration_ms: number; reason?: string }): void;
  connectionRefused(e: { remote_addr: string; limiter: string; reason: string }): void;
  ban(e: { remote_addr: string; until: number; failures: number }): void;
  /** Any other line; fields that could name a destination, DNS answer or byte count are dropped. */
  info(msg: string, fields?: Record<string, unknown>): void;
}

const EVENTS = new Set(["connection opened", "auth attempt", "connection closed", "connection refused", "ban"]);

/** The address as fail2ban wants it: canonical (::ffff:1.2.3.4 is 1.2.3.4). */
function addr(a: string): string {
  try {
    return normalizeIp(a);
  } catch {
    return String(a);
  }
}

export function createServerEventLog(o: ServerEventLogOptions = {}): ServerEventLog {
  const format = o.format ?? "logfmt";
  if (format !== "logfmt" && format !== "json") throw new InvalidArgumentError("format", `must be "logfmt" or "json", got ${JSON.stringify(format)}`);
  const clock = o.clock ?? systemClock;
  const out = o.destination ?? process.stdout;
  const pino = o.pino;
  // Fixed order: time, level, message, then the event's fields in the order given (client text last).
  const write = (msg: string, fields: Record<string, unknown>): void => {
    if (pino !== undefined) {
      pino.info(fields, msg);
      return;
    }
    const record = { ts: new Date(clock.wallNow()).toISOString(), level: "info", msg, ...fields };
    if (format === "json") {
      const { ts, level, ...rest } = record;
      out.write(`${JSON.stringify({ level, ts, ...rest })}\n`);
    } else {
      out.write(`${formatLogfmt(record)}\n`);
    }
  };
  return {
    connectionOpened(e) {
      write("connection opened", { remote_addr: addr(e.remote_addr), transport: e.transport });
    },
    authAttempt(e) {
      write("auth attempt", { result: e.result, remote_addr: addr(e.remote_addr), method: e.method, key_fingerprint: e.key_fingerprint, reason: e.reason, user: e.user });
    },
    connectionClosed(e) {
      write("connection closed", { remote_addr: addr(e.remote_addr), duration: Math.max(0, Math.round(e.duration_ms)) / 1000, reason: e.reason });
    },
    connectionRefused(e) {
      write("connection refused", { remote_addr: addr(e.remote_addr), limiter: e.limiter, reason: e.reason });
    },
    ban(e) {
      write("ban", { remote_addr: addr(e.remote_addr), until: new Date(e.until).toISOString(), failures: e.failures });
    },
    info(msg, fields) {
      const f = scrubFields(fields);
      for (const k of ["ts", "level", "msg", "time"]) delete f[k];
      // A free line never passes for one of the events above (fail2ban reads them by their message).
      write(EVENTS.has(msg) ? `info: ${msg}` : msg, f);
    },
  };
}
