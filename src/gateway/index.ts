/**
 * `portcullis/gateway`: the gateway as a library. Load a configuration file,
 * start a `Gateway` from it, and attach the admin listener and metrics beside
 * it. This entry composes the layers above the features (gateway, metrics,
 * admin), so nothing in src/ imports it; `import "portcullis"` never loads it.
 */
export { Gateway, type GatewayOptions } from "./gateway.js";
export type { GatewayEvents } from "./events.js";
export type { ObservabilityEvents } from "./observability-events.js";
export { loadConfigFile, validateConfig, type LoadResult } from "./config/load.js";
export type { Config, ListenerConfig } from "./config/schema.js";
export { createGatewayLogger, type GatewayLogger } from "./log/logger.js";
export { identityFromCertificate, certificateFingerprint, type IdentitySource } from "./identity/client-cert.js";
export { hashPassword, verifyPassword } from "./identity/passwords.js";
export { attachObservability, type Observability, type ObservabilityOptions } from "../admin/observability.js";
export type { AdminConfig } from "../admin/config.js";
export type { GatewayMetrics } from "../metrics/gateway-metrics.js";
