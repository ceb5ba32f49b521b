/**
 * `reuse_port = true` needs `reusePort` on net listeners, which Node offers
 * from 22.12 (and 23.1, 24). On an older Node the key is refused at start
 * (and by check-config) rather than quietly falling back to the cluster:
 * the operator asked for a way of accepting this Node cannot give.
 */
import type { Config } from "./schema.js";

/** The Node versions that offer `reusePort`, as the refusal names them. */
export const REUSEPORT_NODES = "22.12+, 23.1+ or 24+";

/** Whether this Node offers `reusePort` on net listeners. */
export function reusePortAvailable(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  return major >= 24 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

export function reusePortProblems(c: Pick<Config, "reuse_port">, version = process.versions.node): string[] {
  if (!c.reuse_port || reusePortAvailable(version)) return [];
  return [`reuse_port: SO_REUSEPORT needs Node ${REUSEPORT_NODES} (reusePort on listeners); this is Node ${version}: set reuse_port = false or upgrade Node`];
}
