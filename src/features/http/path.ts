/**
 * The path a route is matched against. It must be the path the application
 * (or the upstream) will act on, or a client could slip past "/internal/*"
 * by writing "//internal/x", "/a/../internal/x" or "/%69nternal/x". Plain
 * paths take the fast way; anything with a dot segment, a doubled slash, a
 * backslash or a percent escape goes through the WHATWG URL parser.
 */

/** The path of a request target, without its query, normalised. Undefined when the target is not a path. */
export function requestPath(url: string): string | undefined {
  const q = url.indexOf("?");
  const raw = q < 0 ? url : url.slice(0, q);
  if (raw.length === 0 || raw.charCodeAt(0) !== 47 /* / */) {
    // Absolute-form targets (proxy requests) carry their own path.
    if (/^https?:\/\//i.test(raw)) {
      try {
        return requestPath(new URL(raw).pathname);
      } catch {
        return undefined;
      }
    }
    return raw === "*" ? "*" : undefined;
  }
  if (!needsSlowPath(raw)) return raw;
  let p: string;
  try {
    p = new URL(raw.replace(/\\/g, "/").replace(/\/{2,}/g, "/"), "http://h").pathname;
  } catch {
    return undefined;
  }
  // Decode escapes of unreserved characters and of "/" so that the matcher sees
  // what the application's router sees; then re-resolve any segments that
  // decoding produced.
  const decoded = p.replace(/%(2[dDeEfF]|[3-7][0-9a-fA-F])/g, (m, h: string) => {
    const c = String.fromCharCode(parseInt(h, 16));
    return /[A-Za-z0-9\-._~/]/.test(c) ? c : m;
  });
  if (decoded === p) return p.replace(/\/{2,}/g, "/");
  return requestPath(decoded);
}

function needsSlowPath(p: string): boolean {
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c === 37 /* % */ || c === 92 /* \ */) return true;
    if (c === 47 /* / */ && i + 1 < p.length) {
      const n = p.charCodeAt(i + 1);
      if (n === 47 || n === 46 /* . */) return true;
    }
  }
  return false;
}
