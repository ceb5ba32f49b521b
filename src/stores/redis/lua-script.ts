/** A Lua script with its SHA1, called by EVALSHA and loaded only when Redis lacks it. */
import { createHash } from "node:crypto";

/** A Lua script with its SHA1, so it is called by EVALSHA and sent in full only when Redis lacks it. */
export class LuaScript {
  readonly sha: string;
  constructor(
    readonly name: string,
    readonly body: string,
    /** The reply is binary: delivered as a Buffer, not decoded as UTF-8 text. */
    readonly binary = false,
  ) {
    this.sha = createHash("sha1").update(body).digest("hex");
  }
}

/** True for the error Redis answers when a script is not in its cache (after SCRIPT FLUSH or a restart). */
export function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith("NOSCRIPT");
}
