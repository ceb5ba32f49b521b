/** The `run` command: starts the gateway, as one process or as a primary with workers. */
import cluster from "node:cluster";
import { createHash } from "node:crypto";
import { readFileSync, watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";
import { parseArgs } from "node:util";
import type { LoadResult } from "../../gateway/config/load.js";
import type { Config } from "../../gateway/config/schema.js";
// The admin listener (API, metrics, dashboard) is loaded only when it is enabled: an idle gateway pays for what it uses.
import type { Observability } from "../../admin/observability.js";
import { holdOptimizingCompilers } from "../compiler-hold.js";
import { limitHeapGrowth } from "../heap-growth.js";
import { holdYoungGeneration } from "../young-generation.js";
import { LineBatch } from "../../gateway/log/line-batch.js";
import { StartupSignals } from "../startup-signals.js";

/** The longest timer Node keeps (about 24.8 days): "until the last connection ends" for a retiring worker. */
const FOREVER_MS = 2 ** 31 - 1;

export const summary = "start the gateway";

const HELP = `usage: portcullis run -c FILE

Starts the gateway with the configuration in FILE (TOML, or YAML for
.yaml/.yml); PORTCULLIS__SECTION__KEY=value environment variables override
file values. Prints which listeners are up and where, then runs until
SIGINT or SIGTERM (with workers = N > 1, a primary process runs N
workers that all accept on every listener, and the signals below apply to
all of them): the first signal stops accepting and lets open
connections finish for up to shutdown_timeout (default 30s), then cuts the
rest; a second signal cuts at once. SIGHUP reloads FILE; an invalid new configuration is
refused with a log line and the running one stays; with workers, a change
of listener addresses or of the worker count rolls the workers over (new
ones start, old ones leave when their last connection ends). With
watch = true (one process only) the file is also reloaded when it changes
(including the symlink swap of a Kubernetes ConfigMap).

A bad configuration prints one line per problem and exits with code 2.

  -c, --config FILE   the configuration file`;

/** Reads, validates and resource-checks the configuration (the modules are loaded by main, after the young generation is held). */
async function configLoader(): Promise<(file: string) => LoadResult> {
  const [{ loadConfigFile }, { checkResources }] = await Promise.all([import("../../gateway/config/load.js"), import("../../gateway/config/resources.js")]);
  return (file) => {
    const r = loadConfigFile(file);
    if (!r.ok) return r;
    const problems = checkResources(r.config);
    return problems.length ? { ok: false, problems } : r;
  };
}

/** Content hash, so a watch event that changed nothing does not reload. */
function digest(file: string): string | undefined {
  try {
    return createHash("sha256").update(readFileSync(file)).digest("hex");
  } catch {
    return undefined;
  }
}

function flushLog(out: { flushSync(): void }): void {
  try {
    out.flushSync();
  } catch {
    // Not open yet or already closed: nothing buffered to lose.
  }
}

export async function main(argv: string[]): Promise<number> {
  let values: { config?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ args: argv, options: { config: { type: "string", short: "c" }, help: { type: "boolean", short: "h" } }, strict: true }));
  } catch (err) {
    console.error(`portcullis run: ${(err as Error).message}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const file = values.config;
  if (file === undefined) {
    console.error("portcullis run: -c FILE is required");
    return 2;
  }
  // A flood's promoted garbage must not grow the old generation to several times its live objects (src/cli/heap-growth.ts).
  try {
    limitHeapGrowth();
  } catch (err) {
    console.error(`portcullis run: ${(err as Error).message}`);
    return 2;
  }
  // Startup's one-off code must not leave a grown young generation or the optimising compilers resident in an idle gateway.
  const releaseYoung = holdYoungGeneration();
  const releaseCompilers = holdOptimizingCompilers();
  const startedUp = (): void => {
    releaseYoung();
    releaseCompilers();
  };
  try {
    return await serve(file, await configLoader(), startedUp);
  } finally {
    startedUp();
  }
}

async function serve(file: string, load: (file: string) => LoadResult, startedUp: () => void): Promise<number> {
  const first = load(file);
  if (!first.ok) {
    for (const p of first.problems) console.error(p);
    return 2;
  }
  if (cluster.isPrimary && first.config.workers > 1) return runPrimary(file, load, first.config, startedUp);
  // From here a SIGTERM, SIGINT or SIGHUP is kept until the gateway can act on it, not left to kill the
  // process (a worker leaves signals to its primary, which stops and replaces it).
  const early = cluster.isWorker ? undefined : new StartupSignals();
  const link = cluster.isWorker ? new (await import("../workers/worker-link.js")).WorkerLink() : undefined;
  const [{ default: pino }, { Gateway }] = await Promise.all([import("pino"), import("../../gateway/gateway.js")]);
  // Buffered, asynchronous log writes: two sync writes per connection would cost more than the guard itself.
  // Flushed on stop; at most a few KiB wait in the buffer, and never longer than the flush interval.
  // Lines reach sonic-boom in 4 KiB batches (see line-batch.ts), which then writes each batch as it comes.
  const logOut = new LineBatch(pino.destination({ dest: 1, sync: false }), 4096);
  const flusher = setInterval(() => logOut.flush(), 250);
  flusher.unref();
  // A worker counts in the primary's memory store (exact limits across workers); with Redis it talks to Redis itself.
  const shared = link !== undefined && first.config.store.kind === "memory" ? await primaryStore(first.config, () => gateway) : undefined;
  const gateway: InstanceType<typeof Gateway> = await Gateway.open(first.config, { logDestination: logOut as unknown as NodeJS.WritableStream, store: shared });
  try {
    const bound = await gateway.start();
    for (const b of bound) {
      const where = b.host.includes(":") ? `[${b.host}]:${b.port}` : `${b.host}:${b.port}`;
      console.error(`portcullis: listener ${b.name} (${b.kind}${b.tls ? ", tls" : ""}) up on ${where}`);
      gateway.logger.info("listener up", { listener: b.name, kind: b.kind, bind: where, tls: b.tls });
    }
    if (first.config.store.kind === "redis") {
      // Where the fleet's shared state is, and whether it answered at start (the log has the switch, if any).
      const state = gateway.storeState;
      console.error(`portcullis: store redis (prefix ${JSON.stringify(first.config.store.prefix)}): ${state === "redis" ? "connected" : `unavailable, deciding by ${state} until it answers`}`);
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    console.error(`portcullis run: cannot start: ${e.code ?? ""} ${e.message.split("\n")[0]}`.replace(/\s+/g, " "));
    clearInterval(flusher);
    flushLog(logOut);
    early?.handOver();
    return 1;
  }

  let lastDigest = digest(file);
  let reloading = Promise.resolve();
  /** Queues a reload (one at a time) and resolves with its outcome. */
  const reloadNow = (why: string): Promise<{ ok: boolean; problems: string[] }> => {
    const outcome = reloading.then(async () => {
      const r = load(file);
      if (!r.ok) {
        gateway.logger.warn("config reload refused", { trigger: why, problems: r.problems.join("; ") });
        gateway.events.emit("reload", { ok: false, problems: r.problems });
        return { ok: false, problems: r.problems };
      }
      try {
        await gateway.reload(r.config);
        lastDigest = digest(file);
        gateway.logger.info("config reloaded", { trigger: why });
        return { ok: true, problems: [] };
      } catch (err) {
        const msg = err instanceof Error ? err.message.split("\n")[0] : String(err);
        gateway.logger.warn("config reload failed", { trigger: why, error: msg });
        gateway.events.emit("reload", { ok: false, problems: [String(msg)] });
        return { ok: false, problems: [String(msg)] };
      }
    });
    reloading = outcome.then(() => undefined);
    return outcome;
  };
  const reload = (why: string): void => void reloadNow(why);

  /** Set by the first SIGTERM/SIGINT. */
  let stopping = false;

  // The admin listener's own settings apply at start; changing them takes a restart.
  let obs: Observability | undefined;
  // With workers, one worker serves the admin listener, and its /metrics sums every worker's (asked of the primary).
  let workerMetrics: { registry: { getMetricsAsJSON(): Promise<unknown[]> }; close(): void } | undefined;
  if (first.config.admin.enabled && (link === undefined || link.servesAdmin)) {
    try {
      const { attachObservability } = await import("../../admin/observability.js");
      const { permissionsReadiness } = await import("../../features/permissions/readiness.js");
      obs = await attachObservability(gateway, first.config.admin, {
        reload: link ? () => link.reloadAll() : () => reloadNow("admin"),
        metricsExposition: link ? () => link.clusterMetrics() : undefined,
      });
      workerMetrics = obs.metrics;
      console.error(`portcullis: admin listener up on ${obs.url}`);
      gateway.logger.info("admin listener up", { bind: obs.url });
      // Signed PostgreSQL permissions: /readyz fails while a listener's policy cannot see the table.
      obs.readiness.add("permissions", () => permissionsReadiness(gateway));
      // A draining gateway accepts nothing new: load balancers should stop sending at once.
      obs.readiness.add("accepting", () => (stopping ? { ok: false, detail: "stopping: draining open connections" } : { ok: true }));
    } catch (err) {
      console.error(`portcullis run: cannot start the admin listener: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`);
      await gateway.stop();
      early?.handOver();
      return 1;
    }
  } else if (link !== undefined && first.config.admin.enabled) {
    const { GatewayMetrics } = await import("../../metrics/gateway-metrics.js");
    workerMetrics = new GatewayMetrics(gateway);
  }

  startedUp();
  let watcher: FSWatcher | undefined;
  let debounce: NodeJS.Timeout | undefined;
  // A worker reloads when the primary says so (the primary decides between a reload and a rolling restart).
  if (first.config.watch && link === undefined) {
    // Watch the directory, not the file: a ConfigMap update swaps a symlink, which replaces the watched inode.
    const name = basename(file);
    watcher = watch(dirname(file), (_event, changed) => {
      if (changed !== null && changed !== name && !changed.startsWith("..")) return;
      clearTimeout(debounce);
      debounce = setTimeout(() => {
        const d = digest(file);
        if (d !== undefined && d !== lastDigest) reload("watch");
      }, 200);
    });
    watcher.on("error", () => gateway.logger.warn("config watch stopped", { file }));
  }

  return new Promise<number>((resolve) => {
    const onHup = (): void => reload("SIGHUP");
    // The first SIGTERM/SIGINT drains (up to shutdown_timeout); a second one cuts what is still open.
    const cut = new AbortController();
    /** A retiring worker (rolling restart) waits for its last connection; a stop then bounds the wait. */
    let retiring = false;
    const onStop = (signal: string, drainMs = first.config.shutdown_timeout): void => {
      if (stopping) {
        if (retiring && signal !== "cut") {
          retiring = false;
          setTimeout(() => cut.abort(), first.config.shutdown_timeout).unref();
          return;
        }
        gateway.logger.info("cutting open connections", { signal });
        cut.abort();
        return;
      }
      stopping = true;
      process.removeListener("SIGHUP", onHup);
      watcher?.close();
      clearTimeout(debounce);
      gateway.logger.info("stopping", { signal, drain_ms: drainMs === FOREVER_MS ? "until idle" : drainMs, ...(link ? { worker: link.slot } : {}) });
      void reloading
        .then(() => gateway.stop({ drainMs, cutNow: cut.signal }))
        .then(async (r) => {
          // The admin listener stays up through the drain, so /metrics and /readyz can be watched.
          await obs?.close();
          workerMetrics?.close();
          process.removeListener("SIGINT", onInt);
          process.removeListener("SIGTERM", onTerm);
          clearInterval(flusher);
          if (link) {
            // The primary logs one `stopped` line with every worker's counts.
            flushLog(logOut);
            await link.send({ pw: 1, t: "stopped", drained: r.drained, cut: r.cut });
            link.close();
            process.disconnect?.();
          } else {
            gateway.logger.stopped({ signal, drained: r.drained, cut: r.cut });
            flushLog(logOut);
          }
          resolve(0);
        });
    };
    const onInt = (): void => onStop("SIGINT");
    const onTerm = (): void => onStop("SIGTERM");
    if (link) {
      // A worker leaves signals to the primary (a terminal's Ctrl-C reaches the whole process group).
      const ignore = (): void => {};
      process.on("SIGHUP", ignore);
      process.on("SIGINT", ignore);
      process.on("SIGTERM", ignore);
      link.handle({
        stop: () => onStop("SIGTERM"),
        cut: () => onStop("cut"),
        retire: () => {
          retiring = true;
          onStop("retire", FOREVER_MS);
        },
        reload: () => reloadNow("SIGHUP"),
        metricsJson: async () => (workerMetrics ? workerMetrics.registry.getMetricsAsJSON() : []),
      });
      // The primary is gone (killed): its listening sockets went with it; finish what is open and leave.
      process.once("disconnect", () => onStop("SIGTERM"));
      void link.send({ pw: 1, t: "ready" });
      return;
    }
    process.on("SIGHUP", onHup);
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    // A signal that came while the gateway started is acted on now, as if it came this moment.
    const kept = early?.handOver();
    if (kept?.stop !== undefined) onStop(kept.stop);
    else if (kept?.hup === true) onHup();
  });
}

/**
 * A worker's store: a message store over the cluster IPC channel to the
 * primary, which answers from the one memory store all workers share.
 * While the primary does not answer (within store.timeout), the store's
 * insurance decides: the limits divided among the workers, locally.
 */
async function primaryStore(config: Config, gateway: () => { logger: { warn(m: string, f?: Record<string, unknown>): void; info(m: string, f?: Record<string, unknown>): void } }) {
  const [{ MessageStore }, { processChannel }] = await Promise.all([import("../../stores/message/message-store.js"), import("../../stores/message/channel.js")]);
  return new MessageStore({
    channel: processChannel(process),
    timeoutMs: config.store.timeout,
    onFailure: "insurance",
    expectedInstances: config.workers,
    insuranceMaxKeys: Math.min(config.store.max_keys, 100_000),
    events: {
      onModeChange: (from, to, reason) => {
        if (to === "remote") gateway().logger.info("store: the primary answers again", { from, reason });
        else gateway().logger.warn(`store: the primary does not answer, deciding by ${to}`, { reason });
      },
    },
  });
}

/** `workers = N` > 1: this process is the primary; it forks the workers, which run serve() themselves. */
async function runPrimary(file: string, load: (file: string) => LoadResult, config: LoadResult extends infer R ? (R extends { ok: true; config: infer C } ? C : never) : never, startedUp: () => void): Promise<number> {
  const [{ Primary }, { createGatewayLogger }] = await Promise.all([import("../workers/primary.js"), import("../../gateway/log/logger.js")]);
  const logger = createGatewayLogger({ format: config.log.format, level: config.log.level, auditDestinations: config.log.audit_destinations });
  const primary = new Primary({ file, load, config, logger, flush: () => {} });
  const running = primary.run();
  if (!(await primary.start())) {
    console.error("portcullis run: a worker could not start (see its message above)");
    await primary.stop("startup");
    return primary.failed ?? 1;
  }
  if (!primary.isStopping) console.error(`portcullis: ${config.workers} workers up (primary pid ${process.pid})`);
  startedUp();
  return running;
}
