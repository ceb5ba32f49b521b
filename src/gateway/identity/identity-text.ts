/**
 * Whether a value read from a certificate may serve as an identity. It is
 * logged, matched against policy rules and used as a limiter key, so it must
 * be one short line of visible text: no control characters (a newline would
 * forge log lines), no invisible format characters (bidi overrides would
 * make one identity look like another), and a bounded length.
 */
export const MAX_IDENTITY_LENGTH = 1024;

const FORBIDDEN = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;

export function identityText(s: string | undefined): string | undefined {
  if (typeof s !== "string" || s.length === 0 || s.length > MAX_IDENTITY_LENGTH) return undefined;
  // \p{Cs} in a u-mode regex matches lone surrogates, so ill-formed UTF-16 is refused too.
  if (FORBIDDEN.test(s) || s.trim() !== s) return undefined;
  return s;
}
