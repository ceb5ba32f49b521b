/**
 * The body of a 429: an RFC 9457 problem document with the IANA
 * "quota-exceeded" problem type and the names of the violated policies,
 * so that a client can tell which limit it ran into.
 */
import type { ProblemOptions } from "./types.js";

export const QUOTA_EXCEEDED_TYPE = "https://iana.org/assignments/http-problem-types#quota-exceeded";
export const PROBLEM_CONTENT_TYPE = "application/problem+json";

export interface ProblemWriter {
  (violated: readonly string[], retryAfterSec: number, detail?: string): string | undefined;
}

export function problemWriter(o: ProblemOptions | false | undefined): ProblemWriter {
  if (o === false) return () => undefined;
  const type = o?.type ?? QUOTA_EXCEEDED_TYPE;
  const title = o?.title ?? "Request cannot be satisfied as assigned quota has been exceeded";
  const fixedDetail = o?.detail;
  return (violated, retryAfterSec, detail) =>
    JSON.stringify({
      type,
      title,
      status: 429,
      detail: fixedDetail ?? detail ?? `Too many requests; retry after ${retryAfterSec} s.`,
      "violated-policies": violated,
    });
}
