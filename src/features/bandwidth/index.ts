/**
 * Bandwidth shaping: byte buckets shared per identity and per IP, gates,
 * and the backpressure-correct stream stage that paces a socket by them.
 * The Redis-backed quota source lives in ./redis-quota.js so that this
 * module does not load the Redis client.
 */
export { ByteBucket, type RateSpec } from "../../algorithms/byte-bucket.js";
export { parseByteSize } from "./byte-size.js";
export { parseCidr, type Cidr } from "../../net/cidr.js";
export {
  bandwidthConfig,
  parseBandwidthConfig,
  directional,
  UNLIMITED,
  type BandwidthConfig,
  type BandwidthConfigInput,
  type CidrOverride,
  type DirectionalRate,
  type RateInput,
} from "./bandwidth-config.js";
export {
  BandwidthRegistry,
  BandwidthCapacityError,
  type BandwidthRegistryOptions,
  type BandwidthMetrics,
  type ConnectionShaping,
  type Direction,
  type DirectionMetrics,
} from "./bandwidth-registry.js";
export { type Gate, ChainGate, openGate } from "./gate.js";
export { QuotaLease, type QuotaSource, type QuotaLeaseOptions } from "./quota.js";
export { SharedBucket, quantumFor, type SharedBucketStats } from "./shared-bucket.js";
export { createShapedPipe, type ShapedPipe, type ShapedPipeOptions } from "./shaped-pipe.js";
export { relayShaped, type ShapedRelay, type ShapedRelayGates } from "./relay.js";
