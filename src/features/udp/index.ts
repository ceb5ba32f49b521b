/** The UDP relay: per-client packet and byte caps, bounded flow table. */
export {
  createUdpRelay,
  type UdpRelay,
  type UdpRelayOptions,
  type UdpRelayCounters,
  type UdpClientLimits,
  type UdpEndpoint,
} from "./udp-relay.js";
export { FlowTable, type TrackedFlow, type AdmitResult } from "./flow-table.js";
