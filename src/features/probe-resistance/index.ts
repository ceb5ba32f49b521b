/** Probe resistance: masking, timing normalization, dynamic record sizing, inter-packet timing. */
export { sampleBoundedLogNormal, normalizeBounds, MAX_DELAY_MS } from "./lognormal.js";
export { RejectionDeadline, startRejectionDelay, type RejectionDelayOptions } from "./rejection-delay.js";
export { parseClientHello, type ClientHelloVerdict, DEFAULT_MAX_HELLO_BYTES } from "./client-hello.js";
export { peekClientHello, replayIntoTls, type PeekResult, type PeekVerdict, type PeekOptions } from "./peek.js";
export {
  relayToMask,
  maskRelayLimits,
  type MaskTarget,
  type MaskRelayOptions,
  type MaskRelayLimits,
  type MaskRelaySummary,
  type MaskRelayOutcome,
  type MaskThrottle,
} from "./mask-relay.js";
export { rejectHandshake, unrecognizedNameAlert } from "./reject-handshake.js";
export { applyDrs, drsRecordLimit, type DrsHandle } from "./drs.js";
export { IptController, IptWriter, type IptWriterOptions, type IptDelaySource } from "./ipt.js";
export {
  handleMaskedTlsConnection,
  matchesServerName,
  type MaskedTlsOptions,
  type MaskedTlsOutcome,
  type UnknownSniAction,
} from "./masked-tls-listener.js";
export { maskUnauthenticated, connectHeadVerdict, type ConnectHeadVerdict } from "./connect-masking.js";
