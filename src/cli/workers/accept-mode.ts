/**
 * How the workers of `workers = N` share a listener's port, chosen by the
 * top-level key `reuse_port`:
 *
 * - "cluster" (reuse_port = false, the default): node:cluster's
 *   round-robin; the primary holds the listening socket and hands each
 *   accepted connection to the next worker. Every Node version has it, the
 *   socket outlives any worker (a worker that stops accepting never drops a
 *   connection the kernel already queued), and a second gateway started on
 *   the same address fails with EADDRINUSE.
 * - "reuseport" (reuse_port = true): each worker binds its own socket with
 *   SO_REUSEPORT and the kernel spreads new connections over them, with no
 *   hop through the primary: much less CPU per connection
 *   (docs/benchmarks.md), at the price of the hazards docs/gateway.md names.
 *   Refused at start on a Node without `reusePort` (config/reuse-port.ts).
 */
import type { Config } from "../../gateway/config/schema.js";

export type AcceptMode = "cluster" | "reuseport";

export function acceptMode(c: Pick<Config, "reuse_port">): AcceptMode {
  return c.reuse_port ? "reuseport" : "cluster";
}
