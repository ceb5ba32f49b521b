/**
 * `node --import tsx bench/stress/run-ip-churn.ts [--addresses N] [--failures F] [--max-tracked T] [--ban-duration 20s] [--settle-ms MS]`:
 * runs the IP-churn flood once and prints its numbers (the stress suite runs the same function).
 */
import { parseArgs } from "node:util";
import { ipChurn, trackedEntryBytes } from "./ip-churn.js";

const { values } = parseArgs({
  options: { addresses: { type: "string" }, failures: { type: "string" }, "max-tracked": { type: "string" }, "settle-ms": { type: "string" }, "ban-duration": { type: "string" }, concurrency: { type: "string" } },
});
const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
console.log(`failed-login record: ${trackedEntryBytes().toFixed(0)} bytes (heap, 65,536 entries)`);
const r = await ipChurn({ addresses: num(values.addresses), failures: num(values.failures), maxTracked: num(values["max-tracked"]), settleMs: num(values["settle-ms"]), banDuration: values["ban-duration"], concurrency: num(values.concurrency) });
console.log("| addresses | failed logins | closed unanswered | re-checked | served again | RSS idle | RSS table full | RSS peak | RSS end | RSS settled | seconds | connections/s |");
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
const mb = (x: number): string => (Number.isNaN(x) ? "-" : `${x.toFixed(1)} MiB`);
console.log(`| ${r.addresses} | ${r.failedLogins} | ${r.closedUnanswered} | ${r.rechecked} | ${r.servedAgain} | ${mb(r.rssIdleMiB)} | ${mb(r.rssFullMiB)} | ${mb(r.rssPeakMiB)} | ${mb(r.rssEndMiB)} | ${mb(r.rssSettledMiB)} | ${r.seconds.toFixed(0)} | ${r.connectionsPerSecond.toFixed(0)} |`);
