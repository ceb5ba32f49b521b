/**
 * Reads a small JSON request body: bounded in size, JSON only, and every
 * failure is an AdminError with a stable code (never a parser's stack).
 */
import type { IncomingMessage } from "node:http";
import { AdminError } from "./errors.js";

export const MAX_BODY_BYTES = 16 * 1024;

export async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = req.headers["content-type"] ?? "";
  if (!/^application\/json\s*(;|$)/i.test(type)) throw new AdminError("unsupported_media_type", "send a JSON body (content-type: application/json)");
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > MAX_BODY_BYTES) throw new AdminError("payload_too_large", `the body may be at most ${MAX_BODY_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new AdminError("payload_too_large", `the body may be at most ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new AdminError("bad_request", "the body is not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new AdminError("bad_request", "the body must be a JSON object");
  return parsed as Record<string, unknown>;
}
