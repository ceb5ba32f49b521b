/**
 * Metrics whose source is a snapshot the gateway already keeps: the udp
 * listeners' datagram and flow counters, the bandwidth shaper's counters and
 * the signed PostgreSQL policies' counters. Nothing is counted twice: each
 * series is read from its source when Prometheus scrapes (prom-client
 * `collect()`), so the gateway's hot paths carry no extra work.
 *
 * A source that is rebuilt (a udp listener re-bound by a reload with new
 * caps, a policy replaced) starts again from zero; Prometheus treats that as
 * a counter reset, which rate() and increase() already handle.
 *
 * Labels stay bounded: listener names (capped by the caller), directions and
 * fixed reason vocabularies. No address, identity or destination is a label.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { Config } from "../gateway/config/schema.js";
import type { PolicyStats } from "../features/permissions/pg-policy.js";
import { ROW_REJECTIONS } from "../features/permissions/permission.js";
import type { BandwidthMetrics } from "../features/bandwidth/bandwidth-registry.js";
import type { UdpRelayCounters } from "../features/udp/udp-relay.js";

/** What these metrics read of a gateway (the Gateway class has all of it; each part is optional). */
export interface SnapshotSource {
  readonly config: Config;
  udpCounters?(listener: string): Readonly<UdpRelayCounters> | undefined;
  udpFlows?(listener: string): number | undefined;
  readonly bandwidth?: { readonly shapedConnections: number; metrics(): BandwidthMetrics };
  permissionStats?(): Array<{ listener: string; ready: boolean; stats: PolicyStats }>;
}

/** Why a udp datagram was dropped. The relay counts packet-rate and byte-rate drops together, so they share one reason. */
export const UDP_DROP_REASONS = ["rate_cap", "flow_cap"] as const;

/** Outcomes of a permission cache lookup. */
const CACHE_RESULTS = ["hit", "miss"] as const;

type Labels<L extends string> = Partial<Record<L, string | number>>;

/** Replaces a counter's series with `rows` (values read from a cumulative source). */
function fill<L extends string>(c: Counter<L>, rows: Array<[Labels<L>, number]>): void {
  c.reset();
  for (const [labels, v] of rows) if (Number.isFinite(v) && v >= 0) c.inc(labels, v);
}

function fillGauge<L extends string>(g: Gauge<L>, rows: Array<[Labels<L>, number]>): void {
  g.reset();
  for (const [labels, v] of rows) if (Number.isFinite(v)) g.set(labels, v);
}

/**
 * Registers the snapshot-read metrics on `registry`. `label` maps a listener
 * name to its label value (the caller bounds how many there are).
 */
export function registerSnapshotMetrics(registry: Registry, gw: SnapshotSource, label: (listener: string) => string): void {
  const registers = [registry];
  const udpNames = (): string[] => gw.config.listener.filter((l) => l.kind === "udp").map((l) => l.name);
  const udp = (): Array<{ listener: string; c: Readonly<UdpRelayCounters> | undefined; flows: number | undefined }> =>
    udpNames().map((n) => ({ listener: label(n), c: gw.udpCounters?.(n), flows: gw.udpFlows?.(n) }));

  new Counter({
    name: "portcullis_udp_packets_total",
    help: "Datagrams relayed by udp listeners, by direction (in: client to upstream, out: upstream to client).",
    labelNames: ["listener", "direction"],
    registers,
    collect() {
      fill(this, udp().flatMap(({ listener, c }) => [[{ listener, direction: "in" }, c?.packetsUp ?? 0], [{ listener, direction: "out" }, c?.packetsDown ?? 0]]));
    },
  });
  new Counter({
    name: "portcullis_udp_bytes_total",
    help: "Payload bytes relayed by udp listeners, by direction.",
    labelNames: ["listener", "direction"],
    registers,
    collect() {
      fill(this, udp().flatMap(({ listener, c }) => [[{ listener, direction: "in" }, c?.bytesUp ?? 0], [{ listener, direction: "out" }, c?.bytesDown ?? 0]]));
    },
  });
  new Counter({
    name: "portcullis_udp_dropped_total",
    help: "Datagrams udp listeners dropped, by direction and reason (rate_cap: the flow's packet or byte rate; flow_cap: no flow could be created).",
    labelNames: ["listener", "direction", "reason"],
    registers,
    collect() {
      fill(
        this,
        udp().flatMap(({ listener, c }) => [
          [{ listener, direction: "in", reason: "rate_cap" }, c?.packetsDroppedUp ?? 0],
          [{ listener, direction: "out", reason: "rate_cap" }, c?.packetsDroppedDown ?? 0],
          // Only a client's first datagram can need a new flow.
          [{ listener, direction: "in", reason: "flow_cap" }, c?.packetsDroppedFlowCap ?? 0],
        ]),
      );
    },
  });
  new Counter({
    name: "portcullis_udp_dropped_bytes_total",
    help: "Payload bytes of the datagrams udp listeners dropped for being over a flow's rate, by direction.",
    labelNames: ["listener", "direction"],
    registers,
    collect() {
      fill(this, udp().flatMap(({ listener, c }) => [[{ listener, direction: "in" }, c?.bytesDroppedUp ?? 0], [{ listener, direction: "out" }, c?.bytesDroppedDown ?? 0]]));
    },
  });
  new Counter({
    name: "portcullis_udp_send_errors_total",
    help: "Datagrams udp listeners failed to send (lost; the flow lives on).",
    labelNames: ["listener"],
    registers,
    collect() {
      fill(this, udp().map(({ listener, c }) => [{ listener }, c?.sendErrors ?? 0]));
    },
  });
  new Gauge({
    name: "portcullis_udp_flows_active",
    help: "Client flows udp listeners track now.",
    labelNames: ["listener"],
    registers,
    collect() {
      fillGauge(this, udp().map(({ listener, flows }) => [{ listener }, flows ?? 0]));
    },
  });

  // Bandwidth: upload is what clients send (in), download what they receive (out), as for portcullis_relayed_bytes_total.
  const bw = (): BandwidthMetrics | undefined => gw.bandwidth?.metrics();
  new Gauge({
    name: "portcullis_shaped_connections",
    help: "Connections relayed through the bandwidth shaper now.",
    registers,
    collect() {
      this.set(gw.bandwidth?.shapedConnections ?? 0);
    },
  });
  new Gauge({
    name: "portcullis_bandwidth_keys",
    help: "Identities and addresses the bandwidth shaper tracks now.",
    registers,
    collect() {
      this.set(bw()?.keys ?? 0);
    },
  });
  new Counter({
    name: "portcullis_shaped_bytes_total",
    help: "Bytes the bandwidth shaper let through, by direction (in: upload from clients, out: download to clients).",
    labelNames: ["direction"],
    registers,
    collect() {
      const m = bw();
      fill(this, [[{ direction: "in" }, m?.upload.bytesRelayed ?? 0], [{ direction: "out" }, m?.download.bytesRelayed ?? 0]]);
    },
  });
  new Counter({
    name: "portcullis_delayed_bytes_total",
    help: "Bytes that waited for a bandwidth bucket before they went, by direction.",
    labelNames: ["direction"],
    registers,
    collect() {
      const m = bw();
      fill(this, [[{ direction: "in" }, m?.upload.bytesDelayed ?? 0], [{ direction: "out" }, m?.download.bytesDelayed ?? 0]]);
    },
  });
  new Counter({
    name: "portcullis_bandwidth_evictions_total",
    help: "Bandwidth keys dropped to make room while their buckets still held debt.",
    registers,
    collect() {
      fill(this, [[{}, bw()?.evictions ?? 0]]);
    },
  });
  new Counter({
    name: "portcullis_bandwidth_refused_total",
    help: "Connections closed when every tracked bandwidth key had live connections (no room for a new key).",
    registers,
    collect() {
      fill(this, [[{}, bw()?.refused ?? 0]]);
    },
  });

  // Signed permissions, per connect listener with a PostgreSQL policy.
  const perms = (): Array<{ listener: string; ready: boolean; stats: PolicyStats }> => (gw.permissionStats?.() ?? []).map((p) => ({ ...p, listener: label(p.listener) }));
  new Gauge({
    name: "portcullis_permission_ready",
    help: "1 while a listener's signed PostgreSQL policy is connected and answering, else 0.",
    labelNames: ["listener"],
    registers,
    collect() {
      fillGauge(this, perms().map((p) => [{ listener: p.listener }, p.ready ? 1 : 0]));
    },
  });
  new Counter({
    name: "portcullis_permission_rows_rejected_total",
    help: "Permission rows that granted nothing, by reason, counted each time a lookup met them.",
    labelNames: ["listener", "reason"],
    registers,
    collect() {
      fill(this, perms().flatMap((p) => ROW_REJECTIONS.map((reason): [Labels<"listener" | "reason">, number] => [{ listener: p.listener, reason }, p.stats.rejectedRows[reason] ?? 0])));
    },
  });
  new Counter({
    name: "portcullis_permission_cache_lookups_total",
    help: "Permission cache lookups by result (hit, miss).",
    labelNames: ["listener", "result"],
    registers,
    collect() {
      fill(this, perms().flatMap((p) => CACHE_RESULTS.map((result): [Labels<"listener" | "result">, number] => [{ listener: p.listener, result }, result === "hit" ? p.stats.cacheHits : p.stats.cacheMisses])));
    },
  });
  new Counter({
    name: "portcullis_permission_lookup_errors_total",
    help: "Permission queries that failed (PostgreSQL unreachable, timeout).",
    labelNames: ["listener"],
    registers,
    collect() {
      fill(this, perms().map((p) => [{ listener: p.listener }, p.stats.lookupErrors]));
    },
  });
}
