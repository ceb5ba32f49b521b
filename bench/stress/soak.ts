/**
 * The soak: `npm run stress -- soak [--soak-seconds 300] [--sample-seconds 5]`.
 * A real `portcullis run` process under a steady mixed load for the whole
 * duration: legitimate exchanges on every protocol (CONNECT tunnel, TLS,
 * HTTP, UDP), wrong-password CONNECTs from ever new addresses
 * (127.201.0.0/16), and seeded garbage. RSS (/proc/<pid>/status) and heap in
 * use (the admin listener's nodejs_heap_size_used_bytes) are sampled
 * throughout.
 *
 * Passes when the process is alive at the end, every legitimate exchange was
 * served, and memory is flat once warm: RSS grew by at most 16 MiB over the
 * second half of the run (the tables fill during the first half; growth after
 * that is a leak).
 */
import net from "node:net";
import { seededRng } from "../../src/core/random.js";
import { mutate, pick } from "./fuzz/mutate.js";
import { connectSeeds } from "./fuzz/corpus.js";
import { PASSWORD, startTarget, USER } from "./fuzz/target.js";
import { numberArg, type StressScenario } from "./scenario.js";

const MiB = 1024 * 1024;
const SECOND_HALF_BUDGET_MIB = 16;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One connection that sends `bytes`, half-closes and waits (bounded) for the close. */
function oneShot(port: number, from: string, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1", localAddress: from });
    const t = setTimeout(() => s.destroy(), 10_000);
    s.on("error", () => {});
    s.on("close", () => {
      clearTimeout(t);
      resolve();
    });
    s.resume();
    s.once("connect", () => s.end(bytes));
  });
}

export const soak: StressScenario = {
  name: "soak",
  async run(opts) {
    const seconds = numberArg(opts, "soak-seconds", opts.quick ? 60 : 300);
    const sampleMs = numberArg(opts, "sample-seconds", 5) * 1000;
    const target = await startTarget();
    const rng = seededRng(opts.seed);
    const started = Date.now();
    const end = started + seconds * 1000;
    const samples: { t: number; rss: number; heap: number | undefined }[] = [];
    let legitOk = 0;
    const legitFailed = new Map<string, number>();
    let legitTotal = 0;
    let bad = 0;
    let garbage = 0;
    const wrong = Buffer.from(`${USER}:not-${PASSWORD}`).toString("base64");
    const seeds = connectSeeds(USER, PASSWORD, target.echoPort);
    try {
      const legitLoop = async (): Promise<void> => {
        while (Date.now() < end && target.gw.exited() === undefined) {
          legitTotal++;
          const failed = await target.legit(5000);
          if (failed.length === 0) legitOk++;
          for (const p of failed) legitFailed.set(p, (legitFailed.get(p) ?? 0) + 1);
          await sleep(50);
        }
      };
      const badLoop = async (): Promise<void> => {
        while (Date.now() < end && target.gw.exited() === undefined) {
          const n = bad++;
          const from = `127.201.${(n >> 8) & 255}.${(n & 255) || 1}`;
          const head = `CONNECT 127.0.0.1:${target.echoPort} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic ${wrong}\r\n\r\n`;
          await oneShot(target.gw.ports.egress!, from, Buffer.from(head));
          await sleep(20);
        }
      };
      const garbageLoop = async (): Promise<void> => {
        while (Date.now() < end && target.gw.exited() === undefined) {
          const n = garbage++;
          const m = mutate(rng, pick(rng, seeds), pick(rng, seeds));
          await oneShot(target.gw.ports.egress!, `127.202.${(n >> 8) & 255}.${(n & 255) || 1}`, m.bytes);
          await sleep(20);
        }
      };
      const sampler = async (): Promise<void> => {
        let lastPrint = 0;
        while (Date.now() < end && target.gw.exited() === undefined) {
          const rss = target.gw.rssBytes();
          if (rss !== undefined) samples.push({ t: Date.now() - started, rss, heap: await target.heapUsedBytes() });
          if (Date.now() - lastPrint > 30_000) {
            lastPrint = Date.now();
            const last = samples.at(-1);
            opts.progress(`soak: ${Math.round((Date.now() - started) / 1000)}/${seconds} s, RSS ${last ? (last.rss / MiB).toFixed(1) : "?"} MiB, legit ${legitOk}/${legitTotal}, wrong passwords ${bad}, garbage ${garbage}`);
          }
          await sleep(Math.max(0, Math.min(sampleMs, end - Date.now())));
        }
      };
      await Promise.all([legitLoop(), legitLoop(), badLoop(), badLoop(), garbageLoop(), sampler()]);
      const alive = target.gw.exited() === undefined;
      const first = samples[0];
      const last = samples.at(-1);
      const mid = samples.find((s) => s.t >= (seconds * 1000) / 2) ?? last;
      const mb = (b: number | undefined): number | string => (b === undefined ? "?" : Math.round((b / MiB) * 10) / 10);
      const secondHalf = last && mid ? last.rss - mid.rss : 0;
      return {
        params: `${seconds} s, samples every ${sampleMs / 1000} s, second-half RSS growth <= ${SECOND_HALF_BUDGET_MIB} MiB`,
        rss_start_mib: mb(first?.rss),
        rss_mid_mib: mb(mid?.rss),
        rss_end_mib: mb(last?.rss),
        rss_max_mib: mb(Math.max(...samples.map((s) => s.rss))),
        rss_growth_2nd_half_mib: mb(secondHalf),
        heap_start_mib: mb(first?.heap),
        heap_end_mib: mb(last?.heap),
        legit_ok: `${legitOk}/${legitTotal}`,
        legit_failed: legitFailed.size === 0 ? "none" : [...legitFailed].map(([p, n]) => `${p}:${n}`).join(","),
        wrong_passwords: bad,
        garbage,
        alive: alive ? "yes" : `no (${target.gw.exited()})`,
        pass: alive && legitOk === legitTotal && legitTotal > 0 && secondHalf <= SECOND_HALF_BUDGET_MIB * MiB ? "yes" : "no",
      };
    } finally {
      await target.close();
    }
  },
};
