/**
 * How the workers of `workers = N` share a listener's port:
 *
 * - "cluster": node:cluster's round-robin; the primary holds the listening
 *   socket and hands each accepted connection to the next worker. Every
 *   Node version has it, and the socket outlives any worker: a worker that
 *   stops accepting (drain, rolling restart) never drops a connection the
 *   kernel already queued.
 * - "reuseport": each worker binds its own socket with SO_REUSEPORT
 *   (`reusePort`, Node 22.12+ and 23.1+) and the kernel spreads new
 *   connections over them, with no hop through the primary.
 *
 * The default is "reuseport" where Node offers it: it costs much less CPU
 * per connection than the primary passing every socket over IPC
 * (docs/benchmarks.md), and "cluster" elsewhere (Node 20).
 * PORTCULLIS_ACCEPT=cluster chooses the cluster on any Node.
 */
export type AcceptMode = "cluster" | "reuseport";

/** Whether this Node offers `reusePort` on net listeners. */
export function reusePortAvailable(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  return major >= 24 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

export function acceptMode(env: NodeJS.ProcessEnv = process.env, version = process.versions.node): AcceptMode {
  return env.PORTCULLIS_ACCEPT !== "cluster" && reusePortAvailable(version) ? "reuseport" : "cluster";
}
