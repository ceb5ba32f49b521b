/**
 * The primary of `workers = N`: it forks N workers that all accept on every
 * listener (node:cluster), keeps the shared limits (a memory store answered
 * to each worker through a MessageStoreHost on its IPC channel), restarts a
 * worker that dies with back-off, and turns signals into the lifecycle:
 * SIGTERM/SIGINT drain every worker (a second one cuts), SIGHUP reloads in
 * every worker, or rolls the workers over when the listeners' addresses or
 * the worker count change. It serves no connection and relays no byte.
 */
import cluster, { type Worker } from "node:cluster";
import { systemClock } from "../../core/clock.js";
import { AggregatorRegistry } from "prom-client";

/** One worker's registry as JSON (what getMetricsAsJSON gives). */
type MetricsJson = Parameters<typeof AggregatorRegistry.aggregate>[0][number];
import type { LoadResult } from "../../gateway/config/load.js";
import type { Config } from "../../gateway/config/schema.js";
import type { GatewayLogger } from "../../gateway/log/logger.js";
import { MemoryStore } from "../../stores/memory-store.js";
import { MessageStoreHost } from "../../stores/message/message-host.js";
import { processChannel } from "../../stores/message/channel.js";
import { type AcceptMode, acceptMode } from "./accept-mode.js";
import { ADMIN_ENV, CONTROL, type FromWorker, REUSEPORT_ENV, SLOT_ENV, type ToWorker, isControl } from "./protocol.js";

/** Restart back-off: the first restart after this, doubling per crash in a row, up to the cap. */
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 30_000;
/** A worker that lived this long before it died starts its slot's back-off over. */
const STABLE_AFTER_MS = 30_000;
/** How long a new worker may take to bind its listeners before a rolling restart gives up on it. */
const READY_TIMEOUT_MS = 30_000;
/** How long a worker may take to answer a metrics request. */
const METRICS_TIMEOUT_MS = 2000;
/** What a stopping worker gets past shutdown_timeout to report and exit before it is killed. */
const STOP_GRACE_MS = 5000;
/**
 * Restarts in a row of a slot whose worker died before it was up, after
 * which the primary gives up and exits: a worker that cannot start (a
 * listener it cannot bind, a file only it reads being invalid now) would
 * otherwise be restarted forever.
 */
const MAX_FAILED_STARTS = 3;
/** A worker's exit code for a bad configuration (as `portcullis run`'s own). */
const EXIT_BAD_CONFIG = 2;

type State = "starting" | "up" | "retiring" | "stopping";

interface Member {
  worker: Worker;
  slot: number;
  admin: boolean;
  state: State;
  host: MessageStoreHost;
  startedAt: number;
  /** Set once the worker has reported how its drain ended. */
  stopped?: { drained: number; cut: number };
  ready: Promise<boolean>;
}

/** What the listeners of a configuration need bound; a change here (or of the worker count) rolls the workers. */
function bindings(c: Config): string {
  return JSON.stringify([c.workers, c.admin.enabled, c.admin.bind, c.listener.map((l) => [l.name, l.kind, l.bind.host, l.bind.port])]);
}

export interface PrimaryOptions {
  file: string;
  load: (file: string) => LoadResult;
  config: Config;
  logger: GatewayLogger;
  /** Flushes the log before the process exits. */
  flush: () => void;
}

export class Primary {
  private config: Config;
  private readonly members = new Set<Member>();
  private readonly store: MemoryStore;
  private readonly backoff = new Map<number, number>();
  private readonly restarts = new Set<NodeJS.Timeout>();
  private readonly metricWaits = new Map<number, (json: unknown[] | undefined) => void>();
  private readonly reloadWaits = new Map<number, (r: { ok: boolean; problems: string[] }) => void>();
  private nextId = 1;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  /** Set once every slot has had a worker up: before that, a worker that cannot start ends the start. */
  private booted = false;
  /** Workers in a row per slot that died before they were up. */
  private readonly failedStarts = new Map<number, number>();
  /** Ends run() with an exit code (a worker that cannot start). */
  private finish: ((code: number) => void) | undefined;
  /** The exit code once the primary gave up on a worker that cannot start. */
  private failedCode: number | undefined;
  /** How the workers share the listeners (reuse_port, read once at start: a reload or rolling restart keeps it). */
  private readonly accept: AcceptMode;
  private reloading = Promise.resolve();
  private onAllExited: (() => void) | undefined;

  constructor(private readonly o: PrimaryOptions) {
    this.config = o.config;
    this.accept = acceptMode(o.config);
    this.store = new MemoryStore({ maxKeys: o.config.store.max_keys });
    // Workers inherit stdout/stderr: their log lines go straight to the same file, never through the primary.
    cluster.setupPrimary({ silent: false });
  }

  /** Whether a stop has begun. */
  get isStopping(): boolean {
    return this.stopping;
  }

  get log(): GatewayLogger {
    return this.o.logger;
  }

  /** Forks the workers and resolves true once all of them are up (false if one could not start). */
  async start(): Promise<boolean> {
    const started: Member[] = [];
    for (let slot = 1; slot <= this.config.workers; slot++) started.push(this.fork(slot, slot === 1));
    const ok = (await Promise.all(started.map((m) => m.ready))).every(Boolean);
    this.booted = ok;
    if (ok && !this.stopping) this.log.info("workers up", { workers: started.length, pids: started.map((m) => m.worker.process.pid).join(","), accept: this.accept });
    return ok;
  }

  /** Runs until SIGTERM/SIGINT has drained every worker; resolves with the exit code. */
  run(): Promise<number> {
    return new Promise<number>((resolve) => {
      this.finish = (code) => {
        process.removeListener("SIGHUP", onHup);
        process.removeListener("SIGINT", onInt);
        process.removeListener("SIGTERM", onTerm);
        resolve(code);
      };
      const onHup = (): void => void this.reload("SIGHUP");
      const onStop = (signal: string): void => {
        if (this.stopping) {
          this.log.info("cutting open connections", { signal });
          this.broadcast({ pw: CONTROL, t: "cut" });
          return;
        }
        process.removeListener("SIGHUP", onHup);
        void this.stop(signal).then(() => {
          process.removeListener("SIGINT", onInt);
          process.removeListener("SIGTERM", onTerm);
          resolve(0);
        });
      };
      const onInt = (): void => onStop("SIGINT");
      const onTerm = (): void => onStop("SIGTERM");
      process.on("SIGHUP", onHup);
      process.on("SIGINT", onInt);
      process.on("SIGTERM", onTerm);
    });
  }

  /** Drains every worker (each up to shutdown_timeout), then logs one `stopped` with the sums. */
  stop(signal: string): Promise<void> {
    this.stopped ??= this.drainAll(signal);
    return this.stopped;
  }

  /** The exit code the primary gave up with (a worker that cannot start), if it did. */
  get failed(): number | undefined {
    return this.failedCode;
  }

  private async drainAll(signal: string): Promise<void> {
    this.stopping = true;
    for (const t of this.restarts) clearTimeout(t);
    this.restarts.clear();
    const drainMs = this.config.shutdown_timeout;
    this.log.info("stopping", { signal, drain_ms: drainMs, workers: this.members.size });
    const exited = new Promise<void>((r) => (this.onAllExited = r));
    for (const m of this.members) {
      m.state = "stopping";
      this.send(m, { pw: CONTROL, t: "stop" });
    }
    if (this.members.size === 0) this.onAllExited?.();
    // A worker that cannot finish is killed: the primary's stop is bounded too.
    const kill = setTimeout(() => {
      for (const m of this.members) m.worker.process.kill("SIGKILL");
    }, drainMs + STOP_GRACE_MS);
    await exited;
    clearTimeout(kill);
    this.log.stopped({ signal, drained: this.drained, cut: this.cut });
    this.o.flush();
  }

  private drained = 0;
  private cut = 0;

  /** Re-reads the file: reloads every worker in place, or rolls them over when bindings change. */
  reload(why: string): Promise<{ ok: boolean; problems: string[] }> {
    const next = this.reloading.then(async (): Promise<{ ok: boolean; problems: string[] }> => {
      if (this.stopping) return { ok: false, problems: ["stopping"] };
      const r = this.o.load(this.o.file);
      if (!r.ok) {
        this.log.warn("config reload refused", { trigger: why, problems: r.problems.join("; ") });
        return { ok: false, problems: r.problems };
      }
      // Workers switching between the cluster's shared socket and their own SO_REUSEPORT sockets
      // would collide on the port (EADDRINUSE) mid-roll: the mode stays as started until a restart.
      if (r.config.reuse_port !== (this.accept === "reuseport")) {
        this.log.warn("config key needs a restart", { trigger: why, key: "reuse_port", running: this.accept === "reuseport", file: r.config.reuse_port });
      }
      if (bindings(r.config) !== bindings(this.config)) return this.roll(r.config, why);
      this.config = r.config;
      const live = [...this.members].filter((m) => m.state === "up");
      const results = await Promise.all(live.map((m) => this.reloadOne(m)));
      const failed = results.flatMap((x) => (x.ok ? [] : x.problems));
      if (failed.length === 0) this.log.info("config reloaded", { trigger: why, workers: live.length });
      else this.log.warn("config reload failed", { trigger: why, problems: [...new Set(failed)].join("; ") });
      return { ok: failed.length === 0, problems: [...new Set(failed)] };
    });
    this.reloading = next.then(() => undefined);
    return next;
  }

  /**
   * A rolling restart: for each slot a new worker starts with the new
   * configuration, and only once it is up does the old one stop accepting
   * and leave when its last connection ends (no deadline: an established
   * tunnel is never cut by a reload). Listeners that stay are never without
   * an accepting worker. Extra slots are retired, missing ones started.
   */
  private async roll(next: Config, why: string): Promise<{ ok: boolean; problems: string[] }> {
    const old = [...this.members].filter((m) => m.state === "up" || m.state === "starting");
    this.config = next;
    this.log.info("rolling restart", { trigger: why, workers_before: old.length, workers_after: next.workers });
    for (let slot = 1; slot <= next.workers; slot++) {
      if (this.stopping) return { ok: false, problems: ["stopping"] };
      const fresh = this.fork(slot, slot === 1);
      if (!(await fresh.ready)) {
        this.log.warn("rolling restart stopped: a new worker did not start", { worker: slot });
        return { ok: false, problems: [`worker ${slot} did not start with the new configuration`] };
      }
      for (const m of old) if (m.slot === slot) this.retire(m);
    }
    for (const m of old) if (m.slot > next.workers) this.retire(m);
    this.log.info("config reloaded", { trigger: why, workers: next.workers, rolled: true });
    return { ok: true, problems: [] };
  }

  private retire(m: Member): void {
    m.state = "retiring";
    this.send(m, { pw: CONTROL, t: "retire" });
  }

  private reloadOne(m: Member): Promise<{ ok: boolean; problems: string[] }> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done({ ok: false, problems: [`worker ${m.slot} did not answer the reload`] }), READY_TIMEOUT_MS);
      const done = (r: { ok: boolean; problems: string[] }): void => {
        clearTimeout(timer);
        this.reloadWaits.delete(id);
        resolve(r);
      };
      this.reloadWaits.set(id, done);
      this.send(m, { pw: CONTROL, t: "reload", id });
    });
  }

  private fork(slot: number, admin: boolean): Member {
    const worker = cluster.fork({ [SLOT_ENV]: String(slot), [ADMIN_ENV]: admin ? "1" : "0", [REUSEPORT_ENV]: this.accept === "reuseport" ? "1" : "0" });
    const host = new MessageStoreHost(processChannel(worker), { store: this.store });
    let markReady!: (ok: boolean) => void;
    const ready = new Promise<boolean>((r) => (markReady = r));
    const m: Member = { worker, slot, admin, state: "starting", host, startedAt: systemClock.now(), ready };
    const timer = setTimeout(() => markReady(false), READY_TIMEOUT_MS);
    worker.on("message", (raw: unknown) => {
      if (!isControl(raw)) return;
      const msg = raw as FromWorker;
      switch (msg.t) {
        case "ready":
          clearTimeout(timer);
          if (m.state === "starting") m.state = "up";
          markReady(true);
          return;
        case "stopped":
          m.stopped = { drained: msg.drained, cut: msg.cut };
          return;
        case "reloaded":
          this.reloadWaits.get(msg.id)?.({ ok: msg.ok, problems: msg.problems });
          return;
        case "metrics":
          this.metricWaits.get(msg.id)?.(msg.json);
          return;
        case "reload-all?":
          void this.reload("admin").then((r) => this.send(m, { pw: CONTROL, t: "reloaded-all", id: msg.id, ok: r.ok, problems: r.problems }));
          return;
        case "cluster-metrics?":
          void this.aggregate().then((text) => this.send(m, { pw: CONTROL, t: "cluster-metrics", id: msg.id, text }));
          return;
      }
    });
    worker.on("exit", (code, signal) => {
      clearTimeout(timer);
      markReady(false);
      this.exited(m, code, signal);
    });
    this.members.add(m);
    return m;
  }

  private exited(m: Member, code: number | null, signal: string | null): void {
    const neverUp = m.state === "starting";
    this.members.delete(m);
    m.host.close();
    // Its connections died with it: their leases must not hold the per-IP and global caps.
    const released = m.host.releaseLeases();
    if (m.stopped) {
      this.drained += m.stopped.drained;
      this.cut += m.stopped.cut;
    }
    const expected = m.state === "stopping" || m.state === "retiring";
    if (!expected || !m.stopped) {
      this.log.warn("worker exited", { worker: m.slot, pid: m.worker.process.pid, code, signal, released_leases: released });
    }
    if (this.stopping) {
      if (this.members.size === 0) this.onAllExited?.();
      return;
    }
    if (expected) return;
    if (neverUp) {
      // A new worker of a rolling restart that did not start: the old one of its slot goes on (roll() reports it).
      if ([...this.members].some((o) => o.slot === m.slot && o.state === "up")) return;
      const failures = (this.failedStarts.get(m.slot) ?? 0) + 1;
      this.failedStarts.set(m.slot, failures);
      if (!this.booted || failures >= MAX_FAILED_STARTS) return this.giveUp(m, code, signal, failures);
    }
    // A crash: the slot is filled again after a back-off that grows while the worker keeps dying young.
    const lived = systemClock.now() - m.startedAt;
    const prev = this.backoff.get(m.slot);
    const delay = lived >= STABLE_AFTER_MS || prev === undefined ? BACKOFF_FIRST_MS : Math.min(prev * 2, BACKOFF_MAX_MS);
    this.backoff.set(m.slot, delay);
    this.log.warn("worker restarting", { worker: m.slot, restart_in_ms: delay });
    const t = setTimeout(() => {
      this.restarts.delete(t);
      if (this.stopping) return;
      const fresh = this.fork(m.slot, m.admin);
      void fresh.ready.then((ok) => {
        if (!ok) return;
        this.failedStarts.delete(fresh.slot);
        this.log.info("worker restarted", { worker: fresh.slot, pid: fresh.worker.process.pid });
      });
    }, delay);
    this.restarts.add(t);
  }

  /**
   * A worker that cannot start: one error line, then the others drain and
   * the primary exits non-zero (2 when the worker found the configuration
   * bad, 1 otherwise) for its supervisor to see, instead of restarting it
   * forever. The worker's own reason is on stderr just before.
   */
  private giveUp(m: Member, code: number | null, signal: string | null, attempts: number): void {
    this.failedCode = code === EXIT_BAD_CONFIG ? EXIT_BAD_CONFIG : 1;
    this.log.error("worker cannot start: stopping the gateway", {
      worker: m.slot,
      code,
      signal,
      attempts,
      exit_code: this.failedCode,
      hint: code === EXIT_BAD_CONFIG ? "the configuration file is invalid now" : "see the worker's message on stderr",
    });
    const exitCode = this.failedCode;
    void this.stop("worker_cannot_start").then(() => this.finish?.(exitCode));
  }

  /**
   * Every live worker's registry, summed per series (prom-client's
   * AggregatorRegistry), plus one series per worker of the connections it
   * accepted, so an operator sees how evenly the kernel and the cluster
   * spread them.
   */
  async aggregate(): Promise<string> {
    const live = [...this.members];
    const replies = await Promise.all(live.map((m) => this.metricsOf(m)));
    const got = replies.filter((r): r is MetricsJson => r !== undefined);
    const registry = AggregatorRegistry.aggregate(got);
    let text = await registry.metrics();
    const perWorker = new Map<number, number>();
    replies.forEach((r, i) => {
      if (r === undefined) return;
      const slot = live[i]!.slot;
      for (const mt of r as unknown as Array<{ name: string; values?: Array<{ value: number; labels: Record<string, unknown> }> }>) {
        if (mt.name !== "portcullis_connections_total") continue;
        for (const v of mt.values ?? []) if (v.labels.result === "accepted") perWorker.set(slot, (perWorker.get(slot) ?? 0) + v.value);
      }
      if (!perWorker.has(slot)) perWorker.set(slot, 0);
    });
    text += "# HELP portcullis_worker_connections_total Connections accepted by each worker (by slot; a restarted worker starts again from 0).\n";
    text += "# TYPE portcullis_worker_connections_total counter\n";
    for (const [slot, n] of [...perWorker].sort((a, b) => a[0] - b[0])) text += `portcullis_worker_connections_total{worker="${slot}"} ${n}\n`;
    text += "# HELP portcullis_workers Worker processes alive now.\n# TYPE portcullis_workers gauge\n";
    text += `portcullis_workers ${live.length}\n`;
    return text;
  }

  private metricsOf(m: Member): Promise<MetricsJson | undefined> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), METRICS_TIMEOUT_MS);
      const done = (json: unknown[] | undefined): void => {
        clearTimeout(timer);
        this.metricWaits.delete(id);
        resolve(json as MetricsJson | undefined);
      };
      this.metricWaits.set(id, done);
      this.send(m, { pw: CONTROL, t: "metrics", id });
    });
  }

  private broadcast(msg: ToWorker): void {
    for (const m of this.members) this.send(m, msg);
  }

  private send(m: Member, msg: ToWorker): void {
    try {
      if (m.worker.isConnected()) m.worker.send(msg);
    } catch {
      // The worker is gone; its exit is handled where it is reported.
    }
  }
}
