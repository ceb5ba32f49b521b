/**
 * Several real `portcullis run` processes sharing one Redis: each gets the
 * same configuration text (with its own `[store]` prefix per test), and
 * the port of its listener is read from its "up on" line. Every wait is
 * bounded; stop() kills what is still running.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GatewayProcess } from "../helpers/gateway-process.js";

export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** A key prefix no other test run uses. */
export function fleetPrefix(area: string): string {
  return `pct:fleet-${area}:${randomUUID().slice(0, 8)}:`;
}

/** The `[store]` section of a gateway on the shared Redis. */
export function redisStoreToml(prefix: string): string {
  // "closed", so a count that missed Redis shows as a refusal, never as a silent local answer; with a
  // deadline a loaded test machine meets (the default 250 ms is for a production Redis next door),
  // so a slow answer is not taken for a failure.
  return ["[store]", 'kind = "redis"', `url = "${REDIS_URL}"`, `prefix = "${prefix}"`, 'on_failure = "closed"', 'timeout = "2s"', ""].join("\n");
}

export interface Fleet {
  procs: GatewayProcess[];
  /** The port of listener `name` at each gateway, in order. */
  ports: number[];
  stop(): Promise<void>;
}

/** Starts `n` gateways on `text` and waits (bounded) until listener `listener` is up at each. */
export async function startFleet(n: number, text: string, listener: string): Promise<Fleet> {
  const dir = await mkdtemp(join(tmpdir(), "portcullis-fleet-"));
  const file = join(dir, "portcullis.toml");
  await writeFile(file, text);
  const procs: GatewayProcess[] = [];
  const stop = async (): Promise<void> => {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill("SIGTERM");
    await Promise.all(
      procs.map(async (p) => {
        try {
          await p.exit(5000);
        } catch {
          p.child.kill("SIGKILL");
        }
      }),
    );
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < n; i++) procs.push(new GatewayProcess(file));
    const up = new RegExp(`listener ${listener} \\([^)]*\\) up on 127\\.0\\.0\\.1:(\\d+)`);
    const ports: number[] = [];
    for (const p of procs) {
      await p.waitFor(() => up.test(p.stderr) || p.child.exitCode !== null, `gateway ${listener} up`);
      const m = up.exec(p.stderr);
      if (m === null) throw new Error(`a gateway did not start: ${p.stderr}${p.stdout}`);
      ports.push(Number(m[1]));
    }
    return { procs, ports, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
