/**
 * A real `portcullis run` process for the attack suite: its configuration
 * written to a temporary directory, started with tsx, ready once every
 * listener (and the admin listener, if any) said "up on"; the bound ports are
 * read from those lines (every bind uses port 0). Its output is kept, bounded,
 * so a crash or a stack trace can be reported; its memory is read from
 * /proc/<pid>/status.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const MAX_OUTPUT = 256 * 1024;

export interface GatewayProcess {
  readonly pid: number;
  /** Bound ports by listener name, and `admin` for the admin listener's. */
  readonly ports: Record<string, number>;
  /** The last 256 KiB the process wrote to stdout and stderr. */
  output(): string;
  /** The exit code or signal once it has exited, else undefined. */
  exited(): string | undefined;
  /** Resident set size in bytes (VmRSS), undefined once the process is gone. */
  rssBytes(): number | undefined;
  /** SIGTERM, then SIGKILL after `graceMs`; removes the temporary directory. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts `portcullis run -c <toml>`; fails if it is not up within `timeoutMs` (90 s: tsx compiles the gateway on a loaded machine) or exits first. */
export async function startGatewayProcess(toml: string, o: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<GatewayProcess> {
  const dir = await mkdtemp(join(tmpdir(), "portcullis-stress-"));
  const file = join(dir, "gateway.toml");
  await writeFile(file, toml);
  const listeners = [...toml.matchAll(/^\[\[listener\]\]/gm)].length;
  const admin = /^\[admin\]/m.test(toml);
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "run", "-c", file], {
    cwd: root,
    env: { ...process.env, ...o.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let exit: string | undefined;
  const keep = (d: Buffer): void => {
    out += d.toString("utf8");
    if (out.length > MAX_OUTPUT) out = out.slice(out.length - MAX_OUTPUT);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exitedP = new Promise<void>((resolve) =>
    child.once("exit", (code, sig) => {
      exit = sig ?? String(code);
      resolve();
    }),
  );
  const ports: Record<string, number> = {};
  const deadline = Date.now() + (o.timeoutMs ?? 90_000);
  const stop = async (graceMs = 5000): Promise<void> => {
    if (exit === undefined) {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exitedP;
      clearTimeout(t);
    }
    await rm(dir, { recursive: true, force: true });
  };
  for (;;) {
    for (const m of out.matchAll(/listener (\S+) \([^)]*\) up on \S*:(\d+)/g)) ports[m[1]!] = Number(m[2]);
    const a = /admin listener up on http:\/\/[^\s/]*:(\d+)/.exec(out);
    if (a) ports.admin = Number(a[1]);
    const want = listeners + (admin ? 1 : 0);
    if (Object.keys(ports).length >= want) break;
    if (exit !== undefined || Date.now() > deadline) {
      await stop();
      throw new Error(`portcullis run did not start (exit ${exit ?? "none"}): ${out.slice(-1500)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const pid = child.pid!;
  return {
    pid,
    ports,
    output: () => out,
    exited: () => exit,
    rssBytes() {
      try {
        const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
        return m ? Number(m[1]) * 1024 : undefined;
      } catch {
        return undefined;
      }
    },
    stop,
  };
}
