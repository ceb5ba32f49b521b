/**
 * The fuzzing scenario: `npm run stress -- fuzz [--seed N] [--per-protocol N] [--fuzz-seconds N]`.
 * Passes when the fuzzer has no finding (see fuzz/fuzzer.ts for what is checked).
 */
import { runFuzz } from "./fuzz/fuzzer.js";
import { startTarget } from "./fuzz/target.js";
import { numberArg, type StressScenario } from "./scenario.js";

export const fuzz: StressScenario = {
  name: "fuzz",
  async run(opts) {
    const perProtocol = numberArg(opts, "per-protocol", opts.quick ? 100 : 2000);
    const seconds = numberArg(opts, "fuzz-seconds", opts.quick ? 60 : 300);
    const target = await startTarget();
    try {
      const r = await runFuzz(target, { seed: opts.seed, perProtocol, timeBudgetMs: seconds * 1000, progress: opts.progress });
      for (const f of r.findings.slice(0, 20)) opts.progress(`fuzz finding: ${f.protocol} #${f.index} ${f.input}: ${f.problem}`);
      const sent = Object.values(r.sent).reduce((a, b) => a + b, 0);
      return {
        params: `seed ${opts.seed}, ${perProtocol}/protocol, <= ${seconds} s`,
        inputs: sent,
        connect: r.sent.connect,
        tls: r.sent.tls,
        http: r.sent.http,
        udp: r.sent.udp,
        findings: r.findings.length,
        max_close_ms: r.maxCloseMs,
        legit_ok: `${r.legitChecks - r.legitFailures}/${r.legitChecks}`,
        seconds: Math.round(r.elapsedMs / 100) / 10,
        pass: r.findings.length === 0 && !r.crashed ? "yes" : "no",
      };
    } finally {
      await target.close();
    }
  },
};
