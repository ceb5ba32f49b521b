/**
 * The `udp` listener kind: a datagram relay to one upstream with per-client
 * packet and byte caps and a bounded flow table (src/features/udp/udp-relay.ts),
 * started, stopped and reloaded by the Gateway like the TCP listeners. A
 * reload that keeps every setting keeps the socket and its flows; one that
 * changes a cap or the upstream is bound anew (the Gateway sees
 * canUpdateTo() = false), since a relay's caps are fixed when it starts.
 */
import type { Clock } from "../../core/clock.js";
import { createUdpRelay, type UdpRelay, type UdpRelayCounters } from "./udp-relay.js";

import type { UdpListenerConfig } from "./config-schema.js";
export type { UdpListenerConfig };

/** Where a listener is bound, as the gateway reports each of its listeners. */
export interface BoundUdpListener {
  name: string;
  kind: string;
  host: string;
  port: number;
  tls: false;
}

/** Rates standing for "no cap" (1 TiB/s, 2^40 datagrams/s): the relay's buckets always have room. */
const NO_CAP = 2 ** 40;

export const UDP_DEFAULTS = {
  max_flows: 10_000,
  flow_idle_timeout: 30_000,
  max_flows_per_ip: 16,
} as const;

/** The settings a running relay cannot change. */
function settingsOf(c: UdpListenerConfig): string {
  return JSON.stringify([c.upstream, c.bytes_per_second, c.packets_per_second, c.max_flows, c.flow_idle_timeout, c.max_flows_per_ip]);
}

export class UdpListener {
  private relay: UdpRelay | undefined;
  private cfg: UdpListenerConfig;

  constructor(
    cfg: UdpListenerConfig,
    private readonly ctx: { readonly clock: Clock },
  ) {
    this.cfg = cfg;
  }

  get config(): UdpListenerConfig {
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

  canUpdateTo(next: UdpListenerConfig): boolean {
    return (
      next.kind === this.cfg.kind &&
      next.bind.host === this.cfg.bind.host &&
      next.bind.port === this.cfg.bind.port &&
      settingsOf(next) === settingsOf(this.cfg)
    );
  }

  update(next: UdpListenerConfig): void {
    this.cfg = next;
  }

  async listen(): Promise<BoundUdpListener> {
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

  bound(): BoundUdpListener {
    const a = this.relay?.address ?? { host: this.cfg.bind.host, port: this.cfg.bind.port };
    return { name: this.cfg.name, kind: this.cfg.kind, host: a.host, port: a.port, tls: false };
  }

  async close(): Promise<void> {
    const r = this.relay;
    this.relay = undefined;
    await r?.close();
  }
}
