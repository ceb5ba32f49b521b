/**
 * Starts what an operator watches a gateway with: its metrics registry and
 * the admin listener (API, /metrics, health, dashboard). `run` calls this
 * after the gateway is up; close() stops both and detaches from the gateway.
 */
import type { AddressInfo } from "node:net";
import { type Clock, systemClock } from "../core/clock.js";
import type { Gateway } from "../gateway/gateway.js";
import { GatewayMetrics } from "../metrics/gateway-metrics.js";
import { AdminServer } from "./admin-server.js";
import { type AdminConfig, resolveAdminToken } from "./config.js";
import { Readiness } from "./readiness.js";

export interface ObservabilityOptions {
  /** The gateway's clock (default: the system clock). */
  clock?: Clock;
  /** Where the token is looked up when the config names an environment variable (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Reloads the configuration from its source, for POST /v1/reload. */
  reload?: () => Promise<{ ok: boolean; problems: string[] }>;
  /** Node process metrics in the registry (default true). */
  processMetrics?: boolean;
  /** Where /metrics text comes from (default: this gateway's registry); with workers, every worker's summed. */
  metricsExposition?: () => Promise<string>;
}

export interface Observability {
  metrics: GatewayMetrics;
  admin: AdminServer;
  /** Add checks here (store, policy); /readyz passes when all do. */
  readiness: Readiness;
  address: AddressInfo;
  url: string;
  close(): Promise<void>;
}

export async function attachObservability(gateway: Gateway, config: AdminConfig, o: ObservabilityOptions = {}): Promise<Observability> {
  // Resolve the token first: without one, nothing is started (fail closed).
  const token = resolveAdminToken(config, o.env);
  const clock = o.clock ?? systemClock;
  const metrics = new GatewayMetrics(gateway, { clock, processMetrics: o.processMetrics, exposition: o.metricsExposition });
  const readiness = new Readiness();
  // The memory store lives in this process: reachable whenever the process answers. A shared store
  // answering from its failure mode is still ready, except "closed", which refuses every connection.
  readiness.add("store", () => {
    const state = gateway.storeState;
    return { ok: state !== "closed", detail: state };
  });
  const admin = new AdminServer({ config, token, clock, gateway, metrics, readiness, reload: o.reload });
  let address: AddressInfo;
  try {
    address = await admin.listen();
  } catch (err) {
    metrics.close();
    throw err;
  }
  return {
    metrics,
    admin,
    readiness,
    address,
    url: admin.url,
    close: async () => {
      metrics.close();
      await admin.close();
    },
  };
}
