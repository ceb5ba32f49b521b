/**
 * What `npm run stress` runs. A scenario is `{ name, run(opts) }`; `run`
 * resolves with a flat record of what it measured. Two keys are read by the
 * runner: `params` (a one-line description of the parameters it ran with)
 * and `pass` ("yes" or "no": whether the target was met). Every
 * other key is a number or a short string shown as `key=value`. A scenario
 * that throws is reported as failed with its message.
 */
export type StressResult = Record<string, number | string>;

export interface StressOptions {
  /** The RNG seed (`--seed N`, default 1). */
  seed: number;
  /** Small versions for a quick look (`--quick`). */
  quick: boolean;
  /** Every `--key value` / `--key=value` given on the command line, by key. */
  args: Record<string, string>;
  /** One line of progress on stderr. */
  progress(line: string): void;
}

export interface StressScenario {
  name: string;
  run(opts: StressOptions): Promise<StressResult>;
}

/** A number from `--key`, else `fallback`. */
export function numberArg(opts: StressOptions, key: string, fallback: number): number {
  const v = opts.args[key];
  if (v === undefined) return fallback;
  const n = Number(v.replace(/_/g, ""));
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${key} must be a non-negative number, got ${JSON.stringify(v)}`);
  return n;
}
