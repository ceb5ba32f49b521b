/**
 * The body of GET /v1/stats: running totals and current state, read from the
 * gateway and its metrics when asked. The dashboard turns the totals into
 * per-second rates itself, so this builder keeps no history.
 *
 * Every section is bounded: listeners come from the configuration, routes
 * and limits from the capped http label set, and the offender table from
 * the tracker's top ten. No destination appears anywhere.
 */
import { readFileSync } from "node:fs";
import type { Clock } from "../core/clock.js";
import type { Gateway } from "../gateway/gateway.js";
import type { GatewayMetrics } from "../metrics/gateway-metrics.js";
import { UDP_DROP_REASONS } from "../metrics/snapshot-metrics.js";

/** The product's version, read once from the package it ships in. */
const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: string }).version ?? "unknown";
  } catch {
    return "unknown";
  }
})();

/** What one listener looks like to an operator: where it is bound, whether it accepts, and what it carries now. */
export interface ListenerStats {
  name: string;
  kind: string;
  /** host:port it is bound to (the configured address while it is not bound). */
  bind: string;
  tls: boolean;
  /** "listening", or "down" when the socket is not bound (closed by a stop, or failed to bind on reload). */
  state: "listening" | "down";
  /** Admitted connections open now (udp: client flows tracked now). */
  connections: number;
}

export interface UdpStats {
  listener: string;
  packets: { in: number; out: number };
  bytes: { in: number; out: number };
  /** Datagrams dropped, by reason (rate_cap: a flow's packet or byte rate; flow_cap: no flow could be created). */
  dropped: Record<(typeof UDP_DROP_REASONS)[number], number>;
  flows: number;
}

export interface StatsDeps {
  gateway: Gateway;
  metrics: GatewayMetrics;
  clock: Clock;
}

export async function buildStats(d: StatsDeps): Promise<Record<string, unknown>> {
  const { gateway, metrics, clock } = d;
  const m = await metrics.stats();
  const bans = (await gateway.penaltyBox.banned()).length;
  const bw = gateway.bandwidth.metrics();
  return {
    time: clock.wallNow(),
    gateway: {
      version: VERSION,
      uptime_s: Math.floor(process.uptime()),
      // The same source /readyz reports: memory, redis, or the failure mode answering now (insurance, open, closed).
      store: gateway.storeState,
      reload: m.reloads.last === undefined ? null : { ok: m.reloads.last.ok, at: new Date(m.reloads.last.at).toISOString(), problems: m.reloads.last.problems },
      reloads: { ok: m.reloads.ok, failed: m.reloads.failed },
    },
    limiters: m.limiters,
    connectionsActive: m.connectionsActive,
    relayedBytes: m.relayedBytes,
    // Bytes counted as they pass (bandwidth shaper and udp), not only when a connection closes.
    liveBytes: liveBytes(gateway, bw),
    listeners: listeners(gateway, m.connectionsByListener, m.acceptedByListener),
    http: { rejections: m.http.rejections, by_listener: m.http.byListener, by_route: m.http.byRoute },
    udp: udp(gateway),
    bandwidth: {
      enabled: gateway.bandwidth.enabled,
      shaped_connections: gateway.bandwidth.shapedConnections,
      keys: bw.keys,
      throttled_seconds: m.throttleSeconds,
      shaped_bytes: { in: bw.upload.bytesRelayed, out: bw.download.bytesRelayed },
      delayed_bytes: { in: bw.upload.bytesDelayed, out: bw.download.bytesDelayed },
      refused: bw.refused,
      // Who was held back longest (an identity or a client address), among the keys the shaper tracks now.
      top_throttled: gateway.bandwidth.throttled(10).map((t) => ({
        kind: t.key.startsWith("id:") ? "identity" : "ip",
        key: t.key.slice(3),
        seconds: { in: t.uploadMs / 1000, out: t.downloadMs / 1000 },
      })),
    },
    bans_active: bans,
    bans_by_reason: m.bansByReason,
    top_offenders: metrics.offenders.top(10, 300_000),
  };
}

function listeners(gateway: Gateway, open: Record<string, number>, accepted: Record<string, number>): Array<ListenerStats & { accepted: number }> {
  const bound = new Map<string, { host: string; port: number }>();
  try {
    for (const b of gateway.bound()) if (b.port > 0) bound.set(b.name, b);
  } catch {
    // A listener whose socket is closed has no address: the ones not read by then show as down.
  }
  return gateway.config.listener.map((l) => {
    const b = bound.get(l.name);
    const host = b?.host ?? l.bind.host;
    const port = b?.port ?? l.bind.port;
    const flows = l.kind === "udp" ? gateway.udpFlows(l.name) : undefined;
    return {
      name: l.name,
      kind: l.kind,
      bind: host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`,
      tls: l.tls !== undefined,
      state: b === undefined ? "down" : "listening",
      connections: flows ?? open[l.name] ?? 0,
      accepted: accepted[l.name] ?? 0,
    };
  });
}

function udp(gateway: Gateway): UdpStats[] {
  return gateway.config.listener
    .filter((l) => l.kind === "udp")
    .map((l) => {
      const c = gateway.udpCounters(l.name);
      return {
        listener: l.name,
        packets: { in: c?.packetsUp ?? 0, out: c?.packetsDown ?? 0 },
        bytes: { in: c?.bytesUp ?? 0, out: c?.bytesDown ?? 0 },
        dropped: { rate_cap: (c?.packetsDroppedUp ?? 0) + (c?.packetsDroppedDown ?? 0), flow_cap: c?.packetsDroppedFlowCap ?? 0 },
        flows: gateway.udpFlows(l.name) ?? 0,
      };
    });
}

function liveBytes(gateway: Gateway, bw: ReturnType<Gateway["bandwidth"]["metrics"]>): { in: number; out: number } {
  let inb = bw.upload.bytesRelayed;
  let outb = bw.download.bytesRelayed;
  for (const l of gateway.config.listener) {
    if (l.kind !== "udp") continue;
    const c = gateway.udpCounters(l.name);
    inb += c?.bytesUp ?? 0;
    outb += c?.bytesDown ?? 0;
  }
  return { in: inb, out: outb };
}
