/**
 * A real gateway with its observability attached: the admin listener on
 * 127.0.0.1 with a known token, and small helpers to call it. Every wait is
 * bounded.
 */
import type { Clock } from "../../src/core/clock.js";
import { attachObservability, type Observability } from "../../src/admin/observability.js";
import { type AdminConfig, DEFAULT_ADMIN_CONFIG } from "../../src/admin/config.js";
import { type Running, startGateway } from "../gateway/fixtures.js";

export const TOKEN = "test-token-0123456789abcdef";

export interface Observed extends Running {
  obs: Observability;
  /** Calls the admin API; `token: null` sends no Authorization header. */
  call(method: string, path: string, o?: { token?: string | null; body?: unknown; headers?: Record<string, string> }): Promise<{ status: number; headers: Headers; json: Record<string, unknown>; text: string }>;
}

export function adminConfig(over: Partial<AdminConfig> = {}): AdminConfig {
  return { ...DEFAULT_ADMIN_CONFIG, bind: "127.0.0.1:0", token: TOKEN, ...over, rate_limit: { ...DEFAULT_ADMIN_CONFIG.rate_limit, limit: 1000, burst: 1000, ...over.rate_limit } };
}

export async function startObserved(
  doc: Record<string, unknown>,
  o: { admin?: Partial<AdminConfig>; clock?: Clock; reload?: () => Promise<{ ok: boolean; problems: string[] }>; processMetrics?: boolean } = {},
): Promise<Observed> {
  const running = await startGateway(doc, { clock: o.clock });
  let obs: Observability;
  try {
    obs = await attachObservability(running.gateway, adminConfig(o.admin), { clock: o.clock, reload: o.reload, processMetrics: o.processMetrics });
  } catch (err) {
    await running.stop();
    throw err;
  }
  const call: Observed["call"] = async (method, path, c = {}) => {
    const headers: Record<string, string> = { ...c.headers };
    const token = c.token === undefined ? TOKEN : c.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (c.body !== undefined) {
      body = typeof c.body === "string" ? c.body : JSON.stringify(c.body);
      headers["content-type"] ??= "application/json";
    }
    const res = await fetch(obs.url + path, { method, headers, body, signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      /* not JSON (metrics, html) */
    }
    return { status: res.status, headers: res.headers, json, text };
  };
  return {
    ...running,
    obs,
    call,
    stop: async () => {
      await obs.close();
      await running.stop();
    },
  };
}

/** The value of one series in a Prometheus exposition (0 when absent). */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const p of (m[2] ?? "").matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) have[p[1]!] = p[2]!;
    if (Object.entries(labels).every(([k, v]) => have[k] === v) && Object.keys(have).length === Object.keys(labels).length) return Number(m[3]);
  }
  return 0;
}
