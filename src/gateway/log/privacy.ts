/**
 * Privacy by default: ordinary log events say who connected and what
 * happened to them, never where a tunnel went, what a name resolved to or
 * how many bytes moved. Only the audit event (when the operator turns on
 * destination auditing) carries a destination. Fields with these names are
 * dropped from every other event, whoever passes them.
 */
const DESTINATION_KEY =
  /^(dest|destination|dst|target|upstream|host|hostname|port|url|uri|path|authority|sni|server_?name|address|addr|resolved|dns|answer|answers|query|qname|bytes|rx|tx|byte_?count)(_[a-z0-9_]*)?$/i;
const BYTES_KEY = /(^|_)(bytes?|octets)($|_)/i;
const DNS_KEY = /(^|_)(dns|resolved|destination|dest|dst)($|_)/i;

/** Whether a field name may carry a destination, a DNS answer or a byte count. */
export function isPrivateField(key: string): boolean {
  if (key === "remote_addr") return false;
  return DESTINATION_KEY.test(key) || BYTES_KEY.test(key) || DNS_KEY.test(key);
}

/** A copy of `fields` without private fields; errors become their message (no stack traces in logs). */
export function scrubFields(fields: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!fields || typeof fields !== "object") return out;
  for (const [k, v] of Object.entries(fields)) {
    if (isPrivateField(k)) continue;
    out[k] = v instanceof Error ? v.message : v;
  }
  return out;
}
