/**
 * Readiness as a list of named checks: the gateway is ready when every check
 * passes. The memory store is always ready; a Redis store adds "store
 * reachable or insurance active", a PostgreSQL policy adds its own. Each
 * check runs with a deadline, so one hung dependency makes /readyz fail
 * rather than hang.
 */
export interface CheckResult {
  ok: boolean;
  detail?: string;
}

export type ReadinessCheck = () => CheckResult | boolean | Promise<CheckResult | boolean>;

/** Most checks registered; each dependency adds one. */
const MAX_CHECKS = 32;

export class Readiness {
  private readonly checks = new Map<string, ReadinessCheck>();

  constructor(private readonly timeoutMs = 2000) {}

  /** Adds (or replaces) a named check. Returns a function that removes it. */
  add(name: string, check: ReadinessCheck): () => void {
    if (!this.checks.has(name) && this.checks.size >= MAX_CHECKS) throw new Error(`readiness: at most ${MAX_CHECKS} checks`);
    this.checks.set(name, check);
    return () => {
      if (this.checks.get(name) === check) this.checks.delete(name);
    };
  }

  async run(): Promise<{ ready: boolean; checks: Array<{ name: string } & CheckResult> }> {
    const results = await Promise.all(
      [...this.checks].map(async ([name, check]) => {
        const r = await this.bounded(check);
        return { name, ...r };
      }),
    );
    return { ready: results.every((r) => r.ok), checks: results };
  }

  private async bounded(check: ReadinessCheck): Promise<CheckResult> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const deadline = new Promise<CheckResult>((resolve) => {
        timer = setTimeout(() => resolve({ ok: false, detail: "timed out" }), this.timeoutMs);
      });
      const r = await Promise.race([Promise.resolve().then(check), deadline]);
      return typeof r === "boolean" ? { ok: r } : r;
    } catch (err) {
      return { ok: false, detail: err instanceof Error ? err.message.split("\n")[0] : "failed" };
    } finally {
      clearTimeout(timer);
    }
  }
}
