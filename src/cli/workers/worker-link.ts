/**
 * A cluster worker's end of the control channel: it answers the primary's
 * stop, cut, retire, reload and metrics requests, and asks the primary for
 * the metrics of every worker (for the admin listener, served by one
 * worker). A worker never acts on signals itself: a terminal's Ctrl-C
 * reaches the whole process group, and the primary decides for all.
 */
import cluster from "node:cluster";
import { CONTROL, type FromWorker, type ToWorker, isControl } from "./protocol.js";

export interface WorkerHandlers {
  stop(): void;
  cut(): void;
  retire(): void;
  reload(): Promise<{ ok: boolean; problems: string[] }>;
  metricsJson(): Promise<unknown[]>;
}

/** How long the admin worker waits for the primary's aggregation before it answers with an error. */
const AGGREGATE_TIMEOUT_MS = 5000;

export class WorkerLink {
  private readonly pending = new Map<number, (text: string | undefined) => void>();
  private readonly reloads = new Map<number, (r: { ok: boolean; problems: string[] }) => void>();
  private nextId = 1;
  private handlers: WorkerHandlers | undefined;
  /** Control messages that came before handle() (a stop while the listeners were still binding). */
  private readonly early: ToWorker[] = [];
  private readonly onMessage = (m: unknown): void => this.receive(m);

  constructor() {
    process.on("message", this.onMessage);
  }

  /** This worker's slot (1..N), for log fields. */
  get slot(): number {
    return Number(process.env.PORTCULLIS_WORKER_SLOT ?? cluster.worker?.id ?? 0);
  }

  /** Whether this worker serves the admin listener (one worker does). */
  get servesAdmin(): boolean {
    return process.env.PORTCULLIS_WORKER_ADMIN === "1";
  }

  /** Starts answering; a stop, cut or retire that arrived while the worker was starting is applied now. */
  handle(h: WorkerHandlers): void {
    this.handlers = h;
    for (const m of this.early.splice(0)) this.receive(m);
  }

  send(m: FromWorker): Promise<void> {
    return new Promise((resolve) => {
      if (!process.connected || process.send === undefined) return resolve();
      try {
        process.send(m, undefined, {}, () => resolve());
      } catch {
        resolve();
      }
    });
  }

  /** The Prometheus text of every worker, summed by the primary. */
  clusterMetrics(): Promise<string> {
    const id = this.nextId++;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => settle(undefined), AGGREGATE_TIMEOUT_MS);
      const settle = (text: string | undefined): void => {
        clearTimeout(timer);
        this.pending.delete(id);
        if (text === undefined) reject(new Error("the primary did not answer with the workers' metrics"));
        else resolve(text);
      };
      this.pending.set(id, settle);
      void this.send({ pw: CONTROL, t: "cluster-metrics?", id });
    });
  }

  /** Asks the primary to reload every worker (or roll them over), as SIGHUP would; resolves with the outcome. */
  reloadAll(): Promise<{ ok: boolean; problems: string[] }> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done({ ok: false, problems: ["the primary did not answer the reload"] }), 60_000);
      const done = (r: { ok: boolean; problems: string[] }): void => {
        clearTimeout(timer);
        this.reloads.delete(id);
        resolve(r);
      };
      this.reloads.set(id, done);
      void this.send({ pw: CONTROL, t: "reload-all?", id });
    });
  }

  close(): void {
    process.off("message", this.onMessage);
    for (const settle of [...this.pending.values()]) settle(undefined);
  }

  private receive(raw: unknown): void {
    if (!isControl(raw)) return;
    const m = raw as ToWorker;
    const h = this.handlers;
    if (h === undefined && m.t !== "cluster-metrics" && m.t !== "reloaded-all") {
      if (this.early.length < 16) this.early.push(m);
      return;
    }
    switch (m.t) {
      case "stop":
        h?.stop();
        return;
      case "cut":
        h?.cut();
        return;
      case "retire":
        h?.retire();
        return;
      case "reload":
        if (h) void h.reload().then((r) => this.send({ pw: CONTROL, t: "reloaded", id: m.id, ok: r.ok, problems: r.problems }));
        return;
      case "metrics":
        if (h) void h.metricsJson().then((json) => this.send({ pw: CONTROL, t: "metrics", id: m.id, json }));
        return;
      case "cluster-metrics":
        this.pending.get(m.id)?.(m.text);
        return;
      case "reloaded-all":
        this.reloads.get(m.id)?.({ ok: m.ok, problems: m.problems });
        return;
    }
  }
}
