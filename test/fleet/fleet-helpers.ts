/**
 * Gateways of one fleet for tests: real `portcullis run` processes sharing
 * one Redis under a prefix of the test's own, each with a tcp relay to an
 * echo server, a connect listener (user alice) and the admin API.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GatewayProcess } from "../helpers/gateway-process.js";
import { withTimeout } from "../gateway/fixtures.js";

export const ADMIN_TOKEN = "fleet-test-token-0123456789";

export interface FleetOptions {
  redisUrl: string;
  prefix: string;
  echoPort: number;
  aliceHash: string;
  /** Extra lines of the [store] section. */
  store?: string[];
  /** Extra lines of the [guard] section. */
  guard?: string[];
}

/** The configuration file of one gateway of the fleet. */
export function fleetToml(o: FleetOptions): string {
  return [
    // Stops cut open connections at once: the tests stop gateways with tunnels open.
    "shutdown_timeout = 0",
    "[store]",
    'kind = "redis"',
    `url = "${o.redisUrl}"`,
    `prefix = "${o.prefix}"`,
    ...(o.store ?? []),
    "[log]",
    'format = "json"',
    "[users]",
    `alice = "${o.aliceHash}"`,
    "[guard]",
    "max_auth_attempts = 3",
    ...(o.guard ?? []),
    "[guard.ban]",
    "failures = 3",
    'duration = "10m"',
    "[admin]",
    "enabled = true",
    'bind = "127.0.0.1:0"',
    `token = "${ADMIN_TOKEN}"`,
    "[[policy.rule]]",
    'identities = ["alice"]',
    'hosts = ["*"]',
    'ports = ["1-65535"]',
    'cidrs = ["127.0.0.0/8"]',
    "[[listener]]",
    'name = "relay"',
    'kind = "tcp"',
    'bind = "127.0.0.1:0"',
    `upstream = "127.0.0.1:${o.echoPort}"`,
    "[[listener]]",
    'name = "proxy"',
    'kind = "connect"',
    'bind = "127.0.0.1:0"',
    "",
  ].join("\n");
}

/** One running gateway: its process and where its listeners and admin API are. */
export class FleetGateway {
  private constructor(
    readonly proc: GatewayProcess,
    readonly relay: number,
    readonly proxy: number,
    readonly admin: string,
  ) {}

  static async start(file: string): Promise<FleetGateway> {
    const proc = new GatewayProcess(file);
    try {
      await proc.waitFor(() => /admin listener up on \S+/.test(proc.stderr) || proc.child.exitCode !== null, "gateway up");
      if (proc.child.exitCode !== null) throw new Error(`gateway exited ${proc.child.exitCode}: ${proc.stderr}`);
    } catch (err) {
      proc.child.kill("SIGKILL");
      throw err;
    }
    const port = (name: string): number => Number(new RegExp(`listener ${name} \\([^)]*\\) up on 127\\.0\\.0\\.1:(\\d+)`).exec(proc.stderr)![1]);
    return new FleetGateway(proc, port("relay"), port("proxy"), /admin listener up on (\S+)/.exec(proc.stderr)![1]!);
  }

  /** SIGTERM, and the exit awaited. */
  async stop(): Promise<void> {
    if (this.proc.child.exitCode !== null || this.proc.child.signalCode !== null) return;
    const exited = this.proc.exit(15_000);
    this.proc.child.kill("SIGTERM");
    await exited.catch(() => this.proc.child.kill("SIGKILL"));
  }

  /** SIGKILL: the gateway vanishes with whatever it held. */
  async kill(): Promise<void> {
    if (this.proc.child.exitCode !== null || this.proc.child.signalCode !== null) return;
    const exited = new Promise((r) => this.proc.child.once("exit", r));
    this.proc.child.kill("SIGKILL");
    await withTimeout(exited, 10_000, "exit after SIGKILL");
  }

  async api(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    const res = await fetch(this.admin + path, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }
}

/** A temporary directory holding one configuration file per gateway. */
export async function configFiles(texts: string[]): Promise<{ files: string[]; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "portcullis-fleet-"));
  const files = texts.map((_, i) => join(dir, `gw${i}.toml`));
  await Promise.all(texts.map((t, i) => writeFile(files[i]!, t)));
  return { files, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * A relay connection from `localAddress`: "open" when a byte came back
 * through the echo, "closed" when the gateway closed it first.
 */
export async function relayConnect(port: number, localAddress: string, held: net.Socket[]): Promise<"open" | "closed"> {
  const s = net.connect({ port, host: "127.0.0.1", localAddress });
  held.push(s);
  s.on("error", () => {});
  return withTimeout(
    new Promise<"open" | "closed">((resolve) => {
      s.once("data", () => resolve("open"));
      s.once("close", () => resolve("closed"));
      s.once("connect", () => s.write("x"));
    }),
    5000,
    `relay connection from ${localAddress}`,
  );
}

/** Resolves once `s` is closed (bounded). */
export function closed(s: net.Socket, ms: number, what: string): Promise<void> {
  if (s.destroyed) return Promise.resolve();
  return withTimeout(new Promise<void>((r) => s.once("close", () => r())), ms, what);
}
