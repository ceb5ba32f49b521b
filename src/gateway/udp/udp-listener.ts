/**
 * The `udp` listener kind: a datagram relay to one upstream with per-client
 * packet and byte caps and a bounded flow table (src/udp/udp-relay.ts),
 * started, stopped and reloaded by the Gateway like the TCP listeners. A
 * reload that keeps every setting keeps the socket and its flows; one that
 * changes a cap or the upstream is bound anew (the Gateway sees
 * canUpdateTo() = false), since a relay's caps are fixed when it starts.
 */
import type { UdpListenerConfig as ListenerConfig } from "./config-schema.js";
import { createUdpRelay, type UdpRelay, type UdpRelayCounters } from "../../udp/udp-relay.js";
import type { GatewayContext } from "../context.js";
import type { BoundListener } from "../listener.js";

/** Rates standing for "no cap" (1 TiB/s, 2^40 datagrams/s): the relay's buckets always have room. */
const NO_CAP = 2 ** 40;

export const UDP_DEFAULTS = {
  max_flows: 10_000,
  flow_idle_timeout: 30_000,
  max_flows_per_ip: 16,
} as const;

/** The settings a running relay cannot change. */
function settingsOf(c: ListenerConfig): string {
  return JSON.stringify([c.upstream, c.bytes_per_second, c.packets_per_second, c.max_flows, c.flow_idle_timeout, c.max_flows_per_ip]);
}

export class UdpListener {
  private relay: UdpRelay | undefined;
  private cfg: ListenerConfig;

  constructor(
    cfg: ListenerConfig,
    private readonly ctx: GatewayContext,
  ) {
    this.cfg = cfg;
  }

  get config(): ListenerConfig {
    return this.cfg;
  }

  /** Client flows tracked now. */
  get connections(): number {
    return this.relay?.flows ?? 0;
  }

  /** Datagram and flow counters (zero before listen). */
  get counters(): Readonly<UdpRelayCounters> | undefined {
    return this.relay?.counters;
  }

  flowsOf(ip: string): number {
    return this.relay?.flowsOf(ip) ?? 0;
  }

  canUpdateTo(next: ListenerConfig): boolean {
    return (
      next.kind === this.cfg.kind &&
      next.bind.host === this.cfg.bind.host &&
      next.bind.port === this.cfg.bind.port &&
      settingsOf(next) === settingsOf(this.cfg)
    );
  }

  update(next: ListenerConfig): void {
    this.cfg = next;
  }

  async listen(): Promise<BoundListener> {
    const c = this.cfg;
    const up = c.upstream!;
    this.relay = await createUdpRelay({
      bind: { host: c.bind.host, port: c.bind.port },
      upstream: { host: up.host, port: up.port },
      perClient: { bytesPerSecond: c.bytes_per_second ?? NO_CAP, packetsPerSecond: c.packets_per_second ?? NO_CAP },
      maxFlows: c.max_flows ?? UDP_DEFAULTS.max_flows,
      flowIdleMs: c.flow_idle_timeout ?? UDP_DEFAULTS.flow_idle_timeout,
      maxFlowsPerIp: c.max_flows_per_ip ?? UDP_DEFAULTS.max_flows_per_ip,
      clock: this.ctx.clock,
    });
    return this.bound();
  }

  bound(): BoundListener {
    const a = this.relay?.address ?? { host: this.cfg.bind.host, port: this.cfg.bind.port };
    return { name: this.cfg.name, kind: this.cfg.kind, host: a.host, port: a.port, tls: false };
  }

  async close(): Promise<void> {
    const r = this.relay;
    this.relay = undefined;
    await r?.close();
  }
}
