/**
 * Reads an application/x-www-form-urlencoded body, bounded in size and time,
 * for limits keyed by a form field (OAuth sends client_id and username in
 * the body). The parsed fields are left on `req.body`, where body parsers
 * put them, so the application still sees them after the stream is read.
 */
import type { IncomingMessage } from "node:http";
import type { Clock } from "../../core/clock.js";

/** Where the bytes of a body read for a key are kept, so that a proxy can still forward them. */
export const RAW_BODY: unique symbol = Symbol("portcullis.rawBody");

export class BodyTooLargeError extends Error {
  readonly status = 413;
}

export function isForm(headers: IncomingMessage["headers"]): boolean {
  const ct = headers["content-type"];
  return typeof ct === "string" && ct.toLowerCase().startsWith("application/x-www-form-urlencoded");
}

/** Reads the whole body as bytes: at most `limit`, within `timeoutMs`. */
export function readBody(req: IncomingMessage, limit: number, timeoutMs: number, clock: Clock): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new BodyTooLargeError(`body of ${declared} bytes exceeds ${limit}`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = clock.setTimer(() => finish(new Error("body read timed out")), timeoutMs);
    const finish = (err?: Error) => {
      timer.cancel();
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks, size));
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) finish(new BodyTooLargeError(`body exceeds ${limit} bytes`));
      else chunks.push(c);
    };
    const onEnd = () => finish();
    const onError = (e: Error) => finish(e);
    const onClose = () => finish(new Error("client closed the request"));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

/** Form fields as a plain object (first value of a repeated field wins). */
export function parseForm(buf: Buffer): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of new URLSearchParams(buf.toString("utf8"))) if (!(k in out)) out[k] = v;
  return out;
}
