/**
 * Command-line parsing for the commands: node:util parseArgs, with its
 * errors turned into one short line an operator can act on (its own
 * messages run long and name internals: "To specify a positional argument
 * starting with a '-', place it at the end of the command after '--'...").
 */
import { type ParseArgsConfig, parseArgs } from "node:util";

export class ArgsError extends Error {}

/** The option or argument a parseArgs message quotes ('--bogus', '-c, --config <value>'). */
function quoted(message: string): string {
  const m = /'([^']+)'/.exec(message);
  return m ? m[1]!.replace(/ <value>$/, "") : "";
}

/** One line for a parseArgs error. */
export function argsProblem(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const msg = e.message ?? String(err);
  const what = quoted(msg);
  switch (e.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown option ${what}`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return /does not take/.test(msg) ? `${what} takes no value` : `${what} needs a value`;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `unexpected argument ${JSON.stringify(what)}`;
    default:
      return msg.split("\n")[0]!;
  }
}

/** parseArgs in strict mode; a bad command line throws ArgsError with one line (see argsProblem). */
export function parseCommandArgs<T extends ParseArgsConfig & { strict?: true }>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    // strict is parseArgs' default: unknown options and stray arguments are errors.
    return parseArgs(config);
  } catch (err) {
    throw new ArgsError(argsProblem(err));
  }
}
