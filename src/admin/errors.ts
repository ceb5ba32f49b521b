/**
 * Errors of the admin API: a JSON body `{ "error": { "code", "message" } }`
 * whose `code` is stable (clients and the CLI switch on it) and whose
 * message is for people. Never a stack trace.
 */
import type { ServerResponse } from "node:http";

export const ERROR_CODES = {
  unauthorized: 401,
  rate_limited: 429,
  not_found: 404,
  method_not_allowed: 405,
  bad_request: 400,
  invalid_address: 400,
  invalid_duration: 400,
  invalid_cursor: 400,
  unknown_limiter: 404,
  not_banned: 404,
  payload_too_large: 413,
  unsupported_media_type: 415,
  reload_failed: 422,
  reload_unavailable: 501,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class AdminError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
  get status(): number {
    return ERROR_CODES[this.code];
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, err: AdminError, headers: Record<string, string> = {}): void {
  sendJson(res, err.status, { error: { code: err.code, message: err.message, ...err.details } }, headers);
}
