import dgram from "node:dgram";
import { once } from "node:events";
import { isIPv6 } from "node:net";
import type { Clock, TimerHandle } from "../../core/clock.js";
import { InvalidArgumentError } from "../../core/errors.js";
import { integerAtLeast, positive } from "../../core/validate.js";
import { ByteBucket } from "../../algorithms/byte-bucket.js";
import { FlowTable, type TrackedFlow } from "./flow-table.js";

export interface UdpEndpoint {
  host: string;
  port: number;
}

export interface UdpClientLimits {
  /** Datagram payload bytes per second, per client flow and direction. */
  bytesPerSecond: number;
  /** Datagrams per second, per client flow and direction. */
  packetsPerSecond: number;
  /** Byte bucket size (default one second of bytesPerSecond); a datagram larger than this is always dropped. */
  burstBytes?: number;
  /** Packet bucket size (default one second of packetsPerSecond). */
  burstPackets?: number;
}

export interface UdpRelayOptions {
  bind: UdpEndpoint;
  upstream: UdpEndpoint;
  perClient: UdpClientLimits;
  /** Most client flows tracked at once; new clients beyond it are dropped. */
  maxFlows: number;
  /** A flow with no datagram either way for this long is forgotten and its upstream socket closed. */
  flowIdleMs: number;
  /** Most flows (source ports) one client address may hold. */
  maxFlowsPerIp: number;
  clock: Clock;
}

/** Counters for the metrics hooks. */
export interface UdpRelayCounters {
  /** Datagrams and payload bytes relayed client → upstream and upstream → client. */
  packetsUp: number;
  bytesUp: number;
  packetsDown: number;
  bytesDown: number;
  /** Datagrams (and their bytes) dropped because the flow was over its packet or byte rate, client → upstream. */
  packetsDroppedUp: number;
  bytesDroppedUp: number;
  /** The same, upstream → client. */
  packetsDroppedDown: number;
  bytesDroppedDown: number;
  /** Datagrams dropped because no flow could be created (table or per-IP cap). */
  packetsDroppedFlowCap: number;
  flowsCreated: number;
  flowsExpired: number;
  /** Send failures (the datagram is lost, the flow lives on). */
  sendErrors: number;
}

export interface UdpRelay {
  readonly address: UdpEndpoint;
  readonly counters: Readonly<UdpRelayCounters>;
  /** Client flows tracked now. */
  readonly flows: number;
  /** Flows of one client address now. */
  flowsOf(ip: string): number;
  close(): Promise<void>;
}

/** Caps of one direction of one flow. */
class FlowShaper {
  private readonly bytes: ByteBucket;
  private readonly packets: ByteBucket;
  constructor(l: UdpClientLimits) {
    this.bytes = new ByteBucket({ bytesPerSecond: l.bytesPerSecond, burst: l.burstBytes ?? l.bytesPerSecond });
    this.packets = new ByteBucket({ bytesPerSecond: l.packetsPerSecond, burst: l.burstPackets ?? l.packetsPerSecond });
  }
  /** Charges one datagram of `len` bytes if both buckets have room; never queues. */
  admit(now: number, len: number): boolean {
    if (this.packets.waitMs(now, 1) > 0) return false;
    if (len > 0 && (len > this.bytes.burst || this.bytes.waitMs(now, len) > 0)) return false;
    this.packets.take(now, 1);
    if (len > 0) this.bytes.take(now, len);
    return true;
  }
}

interface Flow extends TrackedFlow {
  readonly key: string;
  readonly port: number;
  readonly socket: dgram.Socket;
  readonly up: FlowShaper;
  readonly down: FlowShaper;
}

/**
 * A datagram relay between clients and one upstream. Each client flow
 * (address and port) gets its own upstream socket, so replies find their
 * way back, and its own packet and byte buckets per direction: a datagram
 * over either cap is dropped and counted, never queued. The flow table is
 * bounded overall and per client address, and idle flows expire.
 */
export async function createUdpRelay(o: UdpRelayOptions): Promise<UdpRelay> {
  const clock = o.clock;
  positive("perClient.bytesPerSecond", o.perClient.bytesPerSecond);
  positive("perClient.packetsPerSecond", o.perClient.packetsPerSecond);
  integerAtLeast("upstream.port", o.upstream.port, 1);
  if (o.upstream.port > 65535) throw new InvalidArgumentError("upstream.port", "must be <= 65535");
  const counters: UdpRelayCounters = {
    packetsUp: 0, bytesUp: 0, packetsDown: 0, bytesDown: 0,
    packetsDroppedUp: 0, bytesDroppedUp: 0, packetsDroppedDown: 0, bytesDroppedDown: 0, packetsDroppedFlowCap: 0,
    flowsCreated: 0, flowsExpired: 0, sendErrors: 0,
  };
  const type = isIPv6(o.bind.host) ? "udp6" : "udp4";
  const server = dgram.createSocket({ type });
  const upType = isIPv6(o.upstream.host) ? "udp6" : "udp4";
  const onSendError = (err: Error | null): void => {
    if (err) counters.sendErrors++;
  };
  const table = new FlowTable<Flow>({ maxFlows: o.maxFlows, maxFlowsPerIp: o.maxFlowsPerIp, idleMs: o.flowIdleMs }, (f) => {
    counters.flowsExpired++;
    f.socket.close();
  });

  const makeFlow = (key: string, ip: string, port: number): Flow => {
    const socket = dgram.createSocket(upType);
    const flow: Flow = { key, ip, port, socket, lastSeen: 0, up: new FlowShaper(o.perClient), down: new FlowShaper(o.perClient) };
    socket.on("error", () => {
      counters.sendErrors++;
    });
    socket.on("message", (msg, rinfo) => {
      // Only the upstream may answer through this flow.
      if (rinfo.port !== o.upstream.port || rinfo.address !== o.upstream.host) return;
      const now = clock.now();
      table.touch(key, now);
      if (!flow.down.admit(now, msg.length)) {
        counters.packetsDroppedDown++;
        counters.bytesDroppedDown += msg.length;
        return;
      }
      counters.packetsDown++;
      counters.bytesDown += msg.length;
      server.send(msg, port, ip, onSendError);
    });
    counters.flowsCreated++;
    return flow;
  };

  server.on("error", () => {
    counters.sendErrors++;
  });
  server.on("message", (msg, rinfo) => {
    const now = clock.now();
    const key = `${rinfo.address}|${rinfo.port}`;
    const r = table.admit(key, rinfo.address, now, () => makeFlow(key, rinfo.address, rinfo.port));
    if ("refused" in r) {
      counters.packetsDroppedFlowCap++;
      return;
    }
    if (!r.flow.up.admit(now, msg.length)) {
      counters.packetsDroppedUp++;
      counters.bytesDroppedUp += msg.length;
      return;
    }
    counters.packetsUp++;
    counters.bytesUp += msg.length;
    r.flow.socket.send(msg, o.upstream.port, o.upstream.host, onSendError);
  });

  server.bind(o.bind.port, o.bind.host);
  await once(server, "listening");
  const addr = server.address();

  // One sweep timer for the whole table, re-armed each round.
  let timer: TimerHandle | undefined;
  const sweepEvery = Math.max(10, Math.min(1000, o.flowIdleMs / 2));
  const sweep = (): void => {
    table.sweep(clock.now());
    timer = clock.setTimer(sweep, sweepEvery);
  };
  timer = clock.setTimer(sweep, sweepEvery);

  return {
    address: { host: addr.address, port: addr.port },
    counters,
    get flows() {
      return table.size;
    },
    flowsOf: (ip) => table.flowsOf(ip),
    async close() {
      timer?.cancel();
      timer = undefined;
      table.clear();
      await new Promise<void>((res) => server.close(() => res()));
    },
  };
}
