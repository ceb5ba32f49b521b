/**
 * Two sockets of one protocol on one address and port cannot both listen:
 * the second fails with EADDRINUSE when the gateway starts. The file says so
 * already, so the configuration check says so, naming both key paths. Port 0
 * (any free port) never collides; a wildcard host (0.0.0.0, ::) collides
 * with every host on its port.
 */
import type { Config } from "./schema.js";

interface Bound {
  at: string;
  what: string;
  proto: "tcp" | "udp";
  host: string;
  port: number;
}

const WILDCARDS = new Set(["0.0.0.0", "::", "[::]", ""]);

function collide(a: Bound, b: Bound): boolean {
  if (a.proto !== b.proto || a.port !== b.port || a.port === 0) return false;
  return a.host === b.host || WILDCARDS.has(a.host) || WILDCARDS.has(b.host);
}

export function bindConflicts(c: Config): string[] {
  const all: Bound[] = c.listener.map((l, i) => ({ at: `listener[${i}].bind`, what: `listener ${JSON.stringify(l.name)}`, proto: l.kind === "udp" ? "udp" : "tcp", ...l.bind }));
  if (c.admin.enabled) all.push({ at: "admin.bind", what: "the admin listener", proto: "tcp", ...c.admin.bind });
  const problems: string[] = [];
  all.forEach((b, i) => {
    const first = all.slice(0, i).find((a) => collide(a, b));
    if (first) problems.push(`${b.at}: ${b.host}:${b.port} is already taken by ${first.what} (${first.at}); two ${b.proto} sockets cannot listen on one address and port`);
  });
  return problems;
}
