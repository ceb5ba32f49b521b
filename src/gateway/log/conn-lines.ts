/**
 * The two lines every connection writes (`conn_open`, `conn_close`),
 * formatted straight to text instead of through pino's object walk: the
 * bytes are the same as pino's (JSON) or the logfmt destination's, field for
 * field in the same order, but each line is one string concatenation of
 * parts escaped once (the listener's name and transport are escaped when
 * first seen, an address needs no escaping once it is a canonical IP).
 * These are the gateway's only per-connection log lines, so their cost is
 * paid on every accept; every other event goes through pino.
 */
import { logfmtValue } from "./logfmt.js";

export type ConnLineFormat = "json" | "logfmt";

/** Escaped forms of the few names a gateway's lines repeat (listener names, transports); bounded. */
const MAX_NAMES = 256;
/** What a canonical IP address is made of; such a value needs no quoting or escaping in either format. */
const PLAIN_ADDRESS = /^[0-9a-fA-F.:]+$/;

export class ConnLines {
  private readonly names = new Map<string, string>();
  private tsMs = NaN;
  private tsText = "";

  constructor(
    private readonly format: ConnLineFormat,
    /** Wall-clock milliseconds for `ts`. */
    private readonly wallNow: () => number,
  ) {}

  /** `conn_open`, ending in a newline. `remote` is already canonical (or left as given when not an address). */
  open(remote: string, listener: string, transport: string): string {
    if (this.format === "json") {
      return `{"level":"info","ts":"${this.ts()}","event":"conn_open","remote_addr":${this.address(remote)},"listener":${this.name(listener)},"transport":${this.name(transport)}}\n`;
    }
    return `ts=${this.ts()} level=info event=conn_open remote_addr=${this.address(remote)} listener=${this.name(listener)} transport=${this.name(transport)}\n`;
  }

  /** `conn_close`, ending in a newline; `durationMs` is a whole, finite number. */
  close(remote: string, listener: string, durationMs: number): string {
    if (this.format === "json") {
      return `{"level":"info","ts":"${this.ts()}","event":"conn_close","remote_addr":${this.address(remote)},"listener":${this.name(listener)},"duration_ms":${durationMs}}\n`;
    }
    return `ts=${this.ts()} level=info event=conn_close remote_addr=${this.address(remote)} listener=${this.name(listener)} duration_ms=${durationMs}\n`;
  }

  /** ISO 8601 wall time, formatted once per millisecond (a busy gateway writes several lines per ms). */
  private ts(): string {
    const ms = Math.floor(this.wallNow());
    if (ms !== this.tsMs) {
      this.tsMs = ms;
      this.tsText = new Date(ms).toISOString();
    }
    return this.tsText;
  }

  private escape(v: string): string {
    return this.format === "json" ? JSON.stringify(v) : logfmtValue(v);
  }

  private address(a: string): string {
    if (!PLAIN_ADDRESS.test(a)) return this.escape(a);
    return this.format === "json" ? `"${a}"` : a;
  }

  private name(n: string): string {
    let e = this.names.get(n);
    if (e === undefined) {
      e = this.escape(n);
      if (this.names.size >= MAX_NAMES) this.names.clear();
      this.names.set(n, e);
    }
    return e;
  }
}
