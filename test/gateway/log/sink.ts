import { Writable } from "node:stream";

/** A stream that keeps what is written, for reading log lines back in tests. */
export function memorySink(): { stream: Writable; text(): string; lines(): string[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  const text = (): string => chunks.join("");
  return { stream, text, lines: () => text().split("\n").filter((l) => l.length > 0) };
}

/** Parses a logfmt line (as written by the gateway logger) back into fields. */
export function parseLogfmt(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([A-Za-z0-9_.-]+)=(?:"((?:[^"\\]|\\.)*)"|([^\s"]*))(?: |$)/gy;
  let m: RegExpExecArray | null;
  let last = 0;
  while ((m = re.exec(line)) !== null) {
    out[m[1]!] = m[2] !== undefined ? (JSON.parse(`"${m[2]}"`) as string) : m[3]!;
    last = re.lastIndex;
  }
  if (last !== line.length) throw new Error(`not a logfmt line (stopped at ${last}): ${line}`);
  return out;
}
