/**
 * node:tls, loaded at its first use. A gateway without a TLS listener never
 * needs it, and on Node 24 loading it costs an idle process about 4 MiB of
 * resident memory (docs/memory.md); modules on `portcullis run`'s path reach
 * TLS through this function instead of a static import.
 */
import { createRequire } from "node:module";
import type * as Tls from "node:tls";

let loaded: typeof Tls | undefined;

export function tlsModule(): typeof Tls {
  return (loaded ??= createRequire(import.meta.url)("node:tls") as typeof Tls);
}
