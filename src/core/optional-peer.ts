/**
 * pg and ioredis are optional peer dependencies: installed by the users
 * whose configuration needs them (a PostgreSQL permission policy, a Redis
 * store), and loaded only then. When one is missing, the failure names the
 * package to install in one line instead of a module-resolution stack.
 */
import { PortcullisError } from "./errors.js";

export class MissingPeerError extends PortcullisError {
  constructor(
    readonly pkg: string,
    feature: string,
  ) {
    super(`${feature} needs the "${pkg}" package, which is not installed: npm install ${pkg}`, "missing_peer");
  }
}

/** Whether `err` says that the package `pkg` itself cannot be found (not a file inside it, not another package). */
export function isMissingPackage(err: unknown, pkg: string): boolean {
  const e = err as NodeJS.ErrnoException | undefined;
  if (e?.code !== "ERR_MODULE_NOT_FOUND" && e?.code !== "MODULE_NOT_FOUND") return false;
  return typeof e.message === "string" && (e.message.includes(`'${pkg}'`) || e.message.includes(`"${pkg}"`));
}

/** Rethrows a missing `pkg` as a MissingPeerError naming what needed it; any other error as it is. */
export function explainMissingPeer(err: unknown, pkg: string, feature: string): never {
  if (isMissingPackage(err, pkg)) throw new MissingPeerError(pkg, feature);
  throw err;
}
