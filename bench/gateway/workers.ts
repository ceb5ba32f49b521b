/**
 * The relays of the workers benchmark: the gateway with `workers = N` on a
 * chosen Node binary and way of sharing the listening port (node:cluster
 * round-robin, or SO_REUSEPORT where the Node offers `reusePort`), and
 * HAProxy with `nbthread 2`. CPU is read for the whole process tree (the
 * primary and its workers), since the work is spread over them.
 */
import { readFileSync, readdirSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { type Relay, cpuSeconds, freePort, gatewayArgs, gatewayConfig, startProc, waitListening } from "./relays.js";

export interface WorkersRunOptions {
  /** `workers = N` (1: the key left out, one process). */
  workers: number;
  /** The node binary (default: the one running the bench). */
  node?: string;
  /** How the workers share the port: "reuseport" writes `reuse_port = true` (default: the cluster). */
  accept?: "cluster" | "reuseport";
}

export async function gatewayWorkers(target: number, dir: string, name: string, o: WorkersRunOptions): Promise<Relay> {
  const port = await freePort();
  const top = o.workers > 1 ? [`workers = ${o.workers}`, 'shutdown_timeout = "1s"', `reuse_port = ${o.accept === "reuseport"}`] : [];
  const file = await gatewayConfig(dir, port, target, [], top);
  const ready = (out: string): boolean => (o.workers > 1 ? out.includes("workers up") : out.includes("up on"));
  const p = await startProc(o.node ?? process.execPath, gatewayArgs(file), ready, name, 60_000);
  return { name, port, pid: p.pid!, stop: () => p.kill("SIGTERM") };
}

/** HAProxy in tcp mode on two threads (one per core of the benchmark machine). */
export async function haproxyThreads(target: number, dir: string, threads = 2): Promise<Relay> {
  const port = await freePort();
  const cfg = join(dir, `haproxy-nbthread-${port}.cfg`);
  await writeFile(
    cfg,
    `global\n  maxconn 5000\n  nbthread ${threads}\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\nlisten relay\n  bind 127.0.0.1:${port}\n  server s1 127.0.0.1:${target}\n`,
  );
  const p = spawn("haproxy", ["-f", cfg, "-db"], { stdio: "ignore" });
  await waitListening(port);
  return { name: `haproxy tcp, nbthread ${threads}`, port, pid: p.pid!, stop: () => p.kill("SIGKILL") };
}

/** The direct children of `pid` (from /proc/<pid>/task/<tid>/children). */
function children(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // Gone, or a kernel without the children file: the process alone is counted.
  }
  return out;
}

/** CPU seconds used so far by `pid` and every live process below it. */
export function treeCpuSeconds(pid: number): number {
  let total = 0;
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop()!;
    try {
      total += cpuSeconds(p);
    } catch {
      continue;
    }
    todo.push(...children(p));
  }
  return total;
}
