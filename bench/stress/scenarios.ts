/**
 * The IP-churn flood and the wrong-password flood as stress scenarios, with
 * the targets as their pass rule. The floods themselves live in
 * ip-churn.ts and auth-flood.ts (each also runnable on its own).
 */
import { runAuthFlood } from "./auth-flood.js";
import { ipChurn } from "./ip-churn.js";
import { numberArg, type StressScenario } from "./scenario.js";

const mib = (x: number): string => (Number.isNaN(x) ? "-" : x.toFixed(1));
const ms = (x: number): string => (Number.isNaN(x) ? "-" : x.toFixed(0));

/** Churn targets: no offender served again; at most 150 MiB RSS with the default tables. */
const CHURN_RSS_MIB = 150;

export const ipChurnScenario: StressScenario = {
  name: "ip-churn",
  async run(opts) {
    const addresses = numberArg(opts, "addresses", opts.quick ? 5_000 : 100_000);
    const failures = numberArg(opts, "failures", 3);
    opts.progress(`ip-churn: ${addresses} addresses from 127.64.0.0/10, ${failures} failed logins each`);
    const r = await ipChurn({ addresses, failures, settleMs: numberArg(opts, "settle-ms", opts.quick ? 0 : 60_000) });
    const pass = r.servedAgain === 0 && r.rssPeakMiB <= CHURN_RSS_MIB;
    return {
      params: `addresses=${addresses} failures=${failures}`,
      served_again: r.servedAgain,
      rechecked: r.rechecked,
      rss_idle_mib: mib(r.rssIdleMiB),
      rss_peak_mib: mib(r.rssPeakMiB),
      rss_settled_mib: mib(r.rssSettledMiB),
      seconds: r.seconds.toFixed(0),
      pass: pass ? "yes" : "no",
    };
  },
};

/** Auth-flood targets: legitimate clients keep >= 90% success with p95 < 2 s during the flood, 100% after. */
export const authFloodScenario: StressScenario = {
  name: "auth-flood",
  async run(opts) {
    const seconds = numberArg(opts, "flood-seconds", opts.quick ? 10 : 30);
    const attackers = numberArg(opts, "attackers", 50);
    opts.progress(`auth-flood: ${attackers} attackers for ${seconds} s at the default scrypt cost`);
    const r = await runAuthFlood({ durationMs: seconds * 1000, attackers });
    const pass = r.during.successRatio >= 0.9 && r.during.p95Ms < 2000 && r.after.successRatio === 1;
    return {
      params: `seconds=${seconds} attackers=${attackers}`,
      during_ok: `${r.during.ok}/${r.during.attempts}`,
      during_p95_ms: ms(r.during.p95Ms),
      after_ok: `${r.after.ok}/${r.after.attempts}`,
      attackers_per_s: r.attackerPerSecond.toFixed(0),
      pass: pass ? "yes" : "no",
    };
  },
};
