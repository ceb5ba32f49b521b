/**
 * Without a mask host (`mask = false`), a client that is not served is
 * drained, not reset: everything it sends is read and dropped until it
 * finishes (then a FIN), or until a byte, total-time or idle cap (then a
 * FIN, and whatever still comes is dropped until the client closes or the
 * idle time passes again). A reset while the client's bytes sit unread is
 * what a proxy that gave up looks like; a web server that reads a request
 * it cannot parse and closes sends a FIN.
 */
import type net from "node:net";
import { type Clock, type TimerHandle, systemClock } from "../../core/clock.js";
import { integerAtLeast, positive } from "../../core/validate.js";
import type { RejectionDeadline } from "./rejection-delay.js";

export interface DrainLimits {
  /** Bytes read and dropped before the FIN (default 5 MiB, counting the already-read ones). */
  maxBytes?: number;
  /** From the call (default 60 s). */
  totalTimeoutMs?: number;
  /** No byte from the client for this long (default 5 s). */
  idleTimeoutMs?: number;
}

export interface DrainOptions extends DrainLimits {
  clock?: Clock;
  /** The FIN goes out no earlier than this (a configured rejection delay). */
  deadline?: RejectionDeadline;
}

export type DrainOutcome = "client-finished" | "byte-cap" | "total-timeout" | "idle-timeout" | "error";

export interface DrainSummary {
  outcome: DrainOutcome;
  bytes: number;
  durationMs: number;
}

export const DRAIN_DEFAULTS = { maxBytes: 5 * 1024 * 1024, totalTimeoutMs: 60_000, idleTimeoutMs: 5_000 } as const;

/** Validated limits with defaults; throws InvalidArgumentError naming the field. */
export function drainLimits(o: DrainLimits = {}): Required<DrainLimits> {
  return {
    maxBytes: integerAtLeast("maxBytes", o.maxBytes ?? DRAIN_DEFAULTS.maxBytes, 1),
    totalTimeoutMs: positive("totalTimeoutMs", o.totalTimeoutMs ?? DRAIN_DEFAULTS.totalTimeoutMs),
    idleTimeoutMs: positive("idleTimeoutMs", o.idleTimeoutMs ?? DRAIN_DEFAULTS.idleTimeoutMs),
  };
}

/** Drains `client` (already read: `alreadyRead` bytes) and closes it with a FIN. Resolves when it is closed; never rejects. */
export function drainAndClose(client: net.Socket, alreadyRead: number, o: DrainOptions = {}): Promise<DrainSummary> {
  const limits = drainLimits(o);
  const clock = o.clock ?? systemClock;
  const startedAt = clock.now();
  client.allowHalfOpen = true;
  return new Promise((resolve) => {
    let bytes = alreadyRead;
    let outcome: DrainOutcome | undefined;
    let lastRead = clock.now();
    let idle: TimerHandle | undefined;
    let cut: TimerHandle | undefined;
    const done = () => {
      idle?.cancel();
      total.cancel();
      cut?.cancel();
      resolve({ outcome: outcome ?? "client-finished", bytes, durationMs: clock.now() - startedAt });
    };
    if (client.closed) {
      queueMicrotask(done);
      return;
    }
    /** The FIN (after the deadline); then the client has the idle time to close its side. */
    let finished = false;
    const finish = (why: DrainOutcome) => {
      if (finished) return;
      finished = true;
      outcome ??= why;
      idle?.cancel();
      total.cancel();
      const fin = () => {
        client.end();
        cut = clock.setTimer(() => client.destroy(), limits.idleTimeoutMs);
      };
      if (o.deadline === undefined) fin();
      else o.deadline.after(fin);
    };
    const armIdle = (ms: number) => {
      idle = clock.setTimer(() => {
        const quiet = clock.now() - lastRead;
        if (quiet >= limits.idleTimeoutMs) finish("idle-timeout");
        else armIdle(limits.idleTimeoutMs - quiet);
      }, ms);
    };
    const total = clock.setTimer(() => finish("total-timeout"), limits.totalTimeoutMs);
    client.on("data", (chunk: Buffer) => {
      lastRead = clock.now();
      bytes += chunk.length;
      if (bytes >= limits.maxBytes) finish("byte-cap");
    });
    client.on("error", () => {
      outcome ??= "error";
      client.destroy();
    });
    client.once("close", done);
    if (client.readableEnded) finish("client-finished");
    else client.once("end", () => finish("client-finished"));
    if (bytes >= limits.maxBytes) finish("byte-cap");
    else if (!finished) armIdle(limits.idleTimeoutMs);
    client.resume();
  });
}
